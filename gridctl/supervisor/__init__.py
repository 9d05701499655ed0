"""The supervisor: one process per state dir that forks, restarts and adopts workers."""
