"""Images as file contents: what the window, the screenshot command and the benchmark chart
write through :mod:`cachestudio.engine.outputs` (never replacing what is not ours)."""

from __future__ import annotations


def png_bytes(image) -> bytes:
    """A QImage or QPixmap as PNG file contents (written by the caller through
    :mod:`cachestudio.engine.outputs`: never replacing what is not ours)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buf, "PNG"):
        raise RuntimeError("the image could not be encoded as PNG")
    buf.close()
    return bytes(data.data())
