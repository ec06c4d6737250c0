"""The shipped load profiles (YAML, with CSV beside them), installed as ``twin.shipped_profiles``.

Load them by name with :func:`twin.loadprofile.load_profile`; this package holds data only.
"""
