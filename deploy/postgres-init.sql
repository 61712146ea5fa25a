-- MLflow's tables in a database of their own, beside Django's (POSTGRES_DB).
CREATE DATABASE mlflow OWNER sharinghub;
