"""The notifier: delivers alerts, escalations, ops alerts and follow-up events to people.

``service.Notifier`` consumes the worker's output topics in its own consumer group
and delivers through one adapter per destination kind (``destinations``); its
pending deliveries live in a compacted state topic (``state``). Run it with
``survey-alerts notifier``, or inside the worker with
``SURVEY_ALERTS_NOTIFY_IN_WORKER=true``. What each destination receives is
``alerts.notify.render``; the rules that choose destinations, ``alerts.notify.rules``.
"""
