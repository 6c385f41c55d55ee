# The initial schema (squashed before the first release; see CHANGELOG.md).

import django.core.serializers.json
import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='CronTickFailure',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('workflow', models.CharField(max_length=200, verbose_name='workflow')),
                ('trigger', models.CharField(max_length=100, verbose_name='trigger')),
                ('intended_at', models.DateTimeField(help_text="The tick's scheduled time (its identity).", verbose_name='intended fire time')),
                ('error', models.JSONField(encoder=django.core.serializers.json.DjangoJSONEncoder, help_text='Why the run could not start: type, message and per-field errors.', verbose_name='error')),
                ('occurred_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='occurred')),
            ],
            options={
                'verbose_name': 'failed cron tick',
                'verbose_name_plural': 'failed cron ticks',
                'ordering': ['-intended_at', '-id'],
                'indexes': [models.Index(fields=['workflow', 'trigger', '-intended_at'], name='squidmesh_crontick_latest')],
                'constraints': [models.UniqueConstraint(fields=('workflow', 'trigger', 'intended_at'), name='squidmesh_crontick_unique')],
            },
        ),
        migrations.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('run_id', models.UUIDField(verbose_name='run')),
                ('workflow', models.CharField(max_length=200, verbose_name='workflow')),
                ('step', models.CharField(max_length=200, verbose_name='step')),
                ('attempt', models.PositiveIntegerField(verbose_name='attempt number')),
                ('timeout', models.FloatField(blank=True, help_text="The step's own timeout, in seconds.", null=True, verbose_name='timeout')),
                ('cluster', models.CharField(blank=True, help_text='django-q2 cluster (queue) name; empty means the default cluster.', max_length=100, null=True, verbose_name='cluster')),
                ('due_at', models.DateTimeField(help_text='Not handed to the broker before this.', verbose_name='due')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('failed_handovers', models.PositiveIntegerField(default=0, help_text='Times the broker refused the message.', verbose_name='failed hand-overs')),
                ('last_error', models.TextField(blank=True, verbose_name='last hand-over error')),
            ],
            options={
                'verbose_name': 'outbox message',
                'verbose_name_plural': 'outbox messages',
                'ordering': ['due_at', 'id'],
                'indexes': [models.Index(fields=['due_at', 'id'], name='squidmesh_outbox_due')],
            },
        ),
        migrations.CreateModel(
            name='WorkflowRun',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('workflow', models.CharField(help_text='Registered name of the workflow.', max_length=200, verbose_name='workflow')),
                ('trigger', models.CharField(max_length=100, verbose_name='trigger')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('retrying', 'Retrying'), ('failed', 'Failed'), ('completed', 'Completed'), ('cancelling', 'Cancelling'), ('cancelled', 'Cancelled')], default='pending', max_length=20, verbose_name='status')),
                ('payload', models.JSONField(default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder, verbose_name='payload')),
                ('context', models.JSONField(default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder, help_text='Outputs of the succeeded steps, merged in order.', verbose_name='context')),
                ('current_step', models.CharField(blank=True, max_length=200, null=True, verbose_name='current step')),
                ('last_error', models.JSONField(blank=True, encoder=django.core.serializers.json.DjangoJSONEncoder, null=True, verbose_name='last error')),
                ('idempotency_key', models.CharField(blank=True, max_length=255, null=True, verbose_name='idempotency key')),
                ('scheduled_for', models.DateTimeField(blank=True, help_text='When the pending delivery (a wait or a retry) is due, if it is delayed.', null=True, verbose_name='next delivery due')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='updated')),
                ('started_at', models.DateTimeField(blank=True, null=True, verbose_name='started')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished')),
                ('replayed_from', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replays', to='squidmesh.workflowrun', verbose_name='replayed from')),
            ],
            options={
                'verbose_name': 'workflow run',
                'verbose_name_plural': 'workflow runs',
                'ordering': ['-created_at', '-id'],
                'permissions': [('start_workflowrun', 'Can start workflow runs'), ('cancel_workflowrun', 'Can cancel workflow runs'), ('replay_workflowrun', 'Can replay workflow runs')],
            },
        ),
        migrations.CreateModel(
            name='StepRun',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('step', models.CharField(max_length=200, verbose_name='step')),
                ('position', models.PositiveIntegerField(help_text='Order in which the run reached this step (1-based).', verbose_name='position')),
                ('status', models.CharField(choices=[('running', 'Running'), ('retrying', 'Waiting to retry'), ('completed', 'Completed'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], max_length=20, verbose_name='status')),
                ('output', models.JSONField(blank=True, encoder=django.core.serializers.json.DjangoJSONEncoder, help_text='The mapping the step returned, merged into the run context.', null=True, verbose_name='output')),
                ('note', models.JSONField(blank=True, encoder=django.core.serializers.json.DjangoJSONEncoder, help_text='Built-in step record: the message of a log step, the due time of a wait.', null=True, verbose_name='note')),
                ('attempt_count', models.PositiveIntegerField(default=0, verbose_name='attempts')),
                ('last_error', models.JSONField(blank=True, encoder=django.core.serializers.json.DjangoJSONEncoder, null=True, verbose_name='last error')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='step_runs', to='squidmesh.workflowrun', verbose_name='run')),
            ],
            options={
                'verbose_name': 'step run',
                'verbose_name_plural': 'step runs',
                'ordering': ['position'],
            },
        ),
        migrations.CreateModel(
            name='StepAttempt',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('number', models.PositiveIntegerField(verbose_name='attempt number')),
                ('status', models.CharField(choices=[('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('interrupted', 'Interrupted')], max_length=20, verbose_name='status')),
                ('error', models.JSONField(blank=True, encoder=django.core.serializers.json.DjangoJSONEncoder, null=True, verbose_name='error')),
                ('due_at', models.DateTimeField(blank=True, help_text='When the delivery was due to start.', null=True, verbose_name='due')),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='started')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished')),
                ('worker', models.CharField(blank=True, help_text='host:pid that ran the attempt.', max_length=200, verbose_name='worker')),
                ('heartbeat_at', models.DateTimeField(blank=True, help_text='Last sign of life of the worker running the attempt (brokers without a lease, such as Redis, where a silent worker is presumed dead).', null=True, verbose_name='last heartbeat')),
                ('step_run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempts', to='squidmesh.steprun', verbose_name='step run')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempts', to='squidmesh.workflowrun', verbose_name='run')),
            ],
            options={
                'verbose_name': 'step attempt',
                'verbose_name_plural': 'step attempts',
                'ordering': ['number'],
            },
        ),
        migrations.CreateModel(
            name='RunEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('started', 'Started'), ('cancel_requested', 'Cancel requested'), ('cancelled', 'Cancelled'), ('replayed', 'Replayed'), ('replay_of', 'Started as a replay'), ('redispatched', 'Delivery queued again'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('resumed', 'Resumed'), ('event_received', 'Event received')], max_length=40, verbose_name='kind')),
                ('actor', models.CharField(help_text='A username, `cli:<os user>` for the commands, or `system`.', max_length=200, verbose_name='actor')),
                ('source', models.CharField(choices=[('api', 'Python API'), ('admin', 'Admin'), ('rest', 'REST API'), ('cli', 'Command line'), ('cron', 'Cron'), ('recovery', 'Recovery sweep')], max_length=20, verbose_name='source')),
                ('reason', models.TextField(blank=True, verbose_name='reason')),
                ('data', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder, help_text='Details of the event, e.g. the id of the replay a replay started.', verbose_name='data')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='squidmesh.workflowrun', verbose_name='run')),
            ],
            options={
                'verbose_name': 'run event',
                'verbose_name_plural': 'run events',
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.AddIndex(
            model_name='workflowrun',
            index=models.Index(fields=['-created_at', '-id'], name='squidmesh_run_newest'),
        ),
        migrations.AddIndex(
            model_name='workflowrun',
            index=models.Index(fields=['workflow', '-created_at'], name='squidmesh_run_workflow'),
        ),
        migrations.AddIndex(
            model_name='workflowrun',
            index=models.Index(fields=['status', '-created_at'], name='squidmesh_run_status'),
        ),
        migrations.AddIndex(
            model_name='workflowrun',
            index=models.Index(condition=models.Q(('status__in', ['cancelling', 'pending', 'retrying', 'running'])), fields=['updated_at'], name='squidmesh_run_live'),
        ),
        migrations.AddConstraint(
            model_name='workflowrun',
            constraint=models.UniqueConstraint(condition=models.Q(('idempotency_key__isnull', False)), fields=('workflow', 'idempotency_key'), name='squidmesh_run_idempotency_key'),
        ),
        migrations.AddConstraint(
            model_name='workflowrun',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'running', 'retrying', 'failed', 'completed', 'cancelling', 'cancelled'])), name='squidmesh_run_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='steprun',
            constraint=models.UniqueConstraint(fields=('run', 'step'), name='squidmesh_steprun_unique_step'),
        ),
        migrations.AddIndex(
            model_name='stepattempt',
            index=models.Index(condition=models.Q(('status', 'running')), fields=['heartbeat_at'], name='squidmesh_attempt_heartbeat'),
        ),
        migrations.AddConstraint(
            model_name='stepattempt',
            constraint=models.UniqueConstraint(fields=('step_run', 'number'), name='squidmesh_attempt_unique_number'),
        ),
        migrations.AddIndex(
            model_name='runevent',
            index=models.Index(fields=['run', 'created_at'], name='squidmesh_event_run'),
        ),
    ]
