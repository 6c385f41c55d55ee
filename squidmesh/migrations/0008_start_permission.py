from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('squidmesh', '0007_outbox'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='workflowrun',
            options={'ordering': ['-created_at', '-id'], 'permissions': [('start_workflowrun', 'Can start workflow runs'), ('cancel_workflowrun', 'Can cancel workflow runs'), ('replay_workflowrun', 'Can replay workflow runs')], 'verbose_name': 'workflow run', 'verbose_name_plural': 'workflow runs'},
        ),
    ]
