"""Seal the GitLab OAuth tokens stored in clear before projects/sealing.py existed."""

from django.db import migrations

from projects import sealing


def seal_existing(apps, schema_editor):
    logins = apps.get_model("social_django", "UserSocialAuth")
    sealing.seal_rows(logins.objects.all().iterator())


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0005_project_feature_levels"),
        ("social_django", "0022_nonce_timestamp_index"),
    ]

    # Back to clear text is not offered: an older version reads the sealed value as a token
    # GitLab refuses, and its users simply log in again.
    operations = [migrations.RunPython(seal_existing, migrations.RunPython.noop)]
