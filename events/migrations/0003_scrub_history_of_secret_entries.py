"""Forget the plain values config entries had before they became secret (rows written
before ``tenants.history.config_history_scrub`` existed): every historical row older
than an entry's latest secret row loses its value, and the entry's earlier events
lose ``data.value``."""
from django.db import migrations
from django.db.models import Max


def scrub(apps, schema_editor):
    Historical = apps.get_model("tenants", "HistoricalConfigEntry")
    Event = apps.get_model("events", "Event")
    last_secret = Historical.objects.filter(is_secret=True).values("id").annotate(last=Max("history_id"))
    for row in last_secret.iterator():
        entry_id, last = row["id"], row["last"]
        if not Historical.objects.filter(id=entry_id, history_id__lt=last, value__isnull=False).update(value=None):
            continue
        latest = Historical.objects.filter(id=entry_id).order_by("-history_id").values("tenant_id", "key").first()
        events = Event.objects.filter(tenant_id=latest["tenant_id"], resource_type="config", key=latest["key"],
                                      data__id=entry_id, data__has_key="value")
        for event in events.only("pk", "data"):
            data = {k: v for k, v in event.data.items() if k != "value"}
            data["value_redacted"] = True
            Event.objects.filter(pk=event.pk).update(data=data)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0002_historicalwebhooksubscription_webhookdelivery_and_more"),
        ("tenants", "0001_initial"),
    ]

    operations = [migrations.RunPython(scrub, migrations.RunPython.noop)]
