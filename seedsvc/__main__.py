"""``python -m seedsvc``: the same command as the ``seedsvc`` console script.

The command line lives in the ``seedsvc_sidecar`` package (folder ``sidecar/``); the library never
imports it, it is only reached from here when run as a program.
"""

if __name__ == "__main__":
    from seedsvc_sidecar.cli import main

    raise SystemExit(main())
