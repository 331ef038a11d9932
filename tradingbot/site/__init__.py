"""The composition layer on top of the apps (see ``apps.py``)."""
