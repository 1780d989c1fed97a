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


def gray_array(source):
    """A picture (a PNG file's path, or a QImage / QPixmap) as a 2-D NumPy array of 8-bit
    gray levels (Qt's own conversion), for :func:`cachestudio.engine.ssim.ssim`."""
    import numpy as np
    from PySide6.QtGui import QImage, QPixmap

    if isinstance(source, QPixmap):
        image = source.toImage()
    elif isinstance(source, QImage):
        image = source
    else:
        image = QImage(str(source))
        if image.isNull():
            raise ValueError(f"{source} is not a picture Qt can read")
    image = image.convertToFormat(QImage.Format.Format_Grayscale8)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return data[:, :w].copy()
