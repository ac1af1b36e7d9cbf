"""Fixtures of the device signer tests: ``softhsm``, ``kms_emulator``, ``kms_keys`` and ``aws_conn_id`` live
in ``tests/conftest.py``, shared with the end-to-end and CLI tests (one SoftHSM2 token per process).
"""
