"""The Celery app, its tasks, and one loader per entity family."""
