"""Cache Studio's built-in resources: icons, scenarios, the desktop entry.

Installed as the package ``cachestudio.resources`` (see ``pyproject.toml``); found through
``cachestudio.paths.resource_path``.
"""
