"""`gridctl sweep`: the candidates (spec, candidates), running them (run, cluster), ranking (rank)."""
