"""``airflow jwt-bearer …``: inspect key material, export public keys, diagnose and exercise a connection.

Airflow imports :mod:`airflow_jwt_provider.cli.definition` whenever it builds its command-line
parser (for every ``airflow`` command), so that module imports nothing but Airflow's CLI
types; the commands themselves live in :mod:`airflow_jwt_provider.cli.commands`, imported only
when one of them runs.
"""
