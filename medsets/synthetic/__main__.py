"""`python -m medsets.synthetic`: the replicas are written by the `medsets replica` command."""

import sys

print("medsets: write a replica with `medsets replica NAME --out DIR` (`medsets replica --help` lists them).",
      file=sys.stderr)
sys.exit(2)
