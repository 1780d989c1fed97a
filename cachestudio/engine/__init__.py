"""The lab engine: pure Python, never imports Qt (a test proves it)."""
