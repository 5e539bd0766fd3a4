"""The lab: machine-like hosts on one machine, reached over SSH, for the tests and the demo (see topology.py)."""
