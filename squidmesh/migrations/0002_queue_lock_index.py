"""Index django-q2's queue table on (key, lock), the columns its ORM broker dequeues by.

squidmesh parks delayed work (retry backoffs, waits) in `django_q_ormq` as
rows whose `lock` is the due time. With many of them, every dequeue
(`WHERE key = … AND lock < now()`, once per `poll`) would scan past all the
parked rows; the index turns that into a range scan (docs/performance.md).
The table belongs to django-q2, so the index is created only if missing and
dropped on reverse, and only on backends that support `IF [NOT] EXISTS`.
"""

from django.db import migrations

INDEX = "squidmesh_ormq_key_lock"
VENDORS = {"postgresql", "sqlite"}


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor not in VENDORS:
        return
    table = schema_editor.quote_name(apps.get_model("django_q", "OrmQ")._meta.db_table)
    schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON {table} ("key", "lock")')


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor not in VENDORS:
        return
    schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [
        ("squidmesh", "0001_initial"),
        ("django_q", "0007_ormq"),
    ]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
