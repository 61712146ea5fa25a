from django.apps import AppConfig


class MlflowBridgeConfig(AppConfig):
    name = "mlflow_bridge"
    verbose_name = "MLflow bridge"
