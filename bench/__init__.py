"""`make bench`: performance figures of bookloop, each a ratio against a baseline measured in the
same run (the machine is shared and noisy). Not collected by pytest (no test_*.py files here)."""
