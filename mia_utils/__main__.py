from mia_utils.cli import main

if __name__ == "__main__":  # guarded: Dask's worker processes re-import the main module
    raise SystemExit(main())
