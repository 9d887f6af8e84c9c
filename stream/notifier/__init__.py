"""The notifier process (``survey-alerts notifier``): delivers alerts, escalations, ops alerts and
follow-up events to people and systems.

Owns: consuming the worker's output topics in its own consumer group (``service``), pending
deliveries in a compacted state topic (``state``), its metrics (``metrics``), its web
endpoints and start-up (``main``) and its commands (``cli``). It sends through the adapters of
``stream.destinations``; what each destination receives is ``alerts.notify.render``; which
destinations a message goes to, ``alerts.notify.rules``. It can also run inside the worker's
process (``SURVEY_ALERTS_NOTIFY_IN_WORKER=true``), handed to it by the command group.

May import: ``schemas``, ``alerts``, ``stream.destinations`` and the shared ``stream`` layers;
never another process's package nor ``stream.tools``.
"""
