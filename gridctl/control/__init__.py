"""Control: newline-delimited JSON over owner-only Unix sockets (CLI ⇄ supervisor ⇄ workers)."""
