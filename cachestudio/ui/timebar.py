"""The timeline under the charts: where the views are in the run, and a handle to scrub.

Dragging the handle (or the keys ← →, Shift for 10 s, Ctrl for the previous / next fault)
shows a past moment of the run; the lab goes on meanwhile (or stays paused). "Live" (End)
returns to now. In a replay the bar also plays: Play / Pause, the speed (×¼ … ×16).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
RESOLUTION = 1000  # slider steps per second of lab time


def speed_name(x: float) -> str:
    return {0.25: "×¼", 0.5: "×½"}.get(x, f"×{x:g}")


class TimeBar(QWidget):
    scrubbed = Signal(float)  # the user moved the handle to this lab time
    live_asked = Signal()
    play_asked = Signal()  # replay: play / pause
    speed_changed = Signal(float)

    def __init__(self, replay: bool = False, parent=None):
        super().__init__(parent)
        self.setObjectName("time-bar")
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        self.play = QPushButton("Play")
        self.play.setObjectName("replay-play")
        self.play.setToolTip("play / pause the replay (Space)")
        self.play.clicked.connect(self.play_asked)
        self.play.setVisible(replay)
        row.addWidget(self.play)
        self.speed = QComboBox()
        self.speed.setObjectName("replay-speed")
        for x in SPEEDS:
            self.speed.addItem(speed_name(x), x)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setToolTip("replay speed ([ slower, ] faster)")
        self.speed.currentIndexChanged.connect(lambda i: self.speed_changed.emit(float(self.speed.itemData(i))))
        self.speed.setVisible(replay)
        row.addWidget(self.speed)
        self.at = QLabel("0.0 s")
        self.at.setObjectName("time-at")
        row.addWidget(self.at)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("timeline")
        self.slider.setToolTip("drag to show a past moment (← →, Shift: 10 s, Ctrl: previous / next fault; End: live)")
        self.slider.setRange(0, 0)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys belong to the window
        self.slider.sliderMoved.connect(lambda v: self.scrubbed.emit(v / RESOLUTION))
        self.slider.actionTriggered.connect(self._clicked)
        row.addWidget(self.slider, 1)
        self.end = QLabel("")
        self.end.setObjectName("time-end")
        row.addWidget(self.end)
        self.live = QPushButton("Live")
        self.live.setObjectName("time-live")
        self.live.setToolTip("back to now (End)")
        self.live.clicked.connect(self.live_asked)
        self.live.setVisible(not replay)
        row.addWidget(self.live)
        self.replay = replay

    def _clicked(self, action: int) -> None:
        """A click on the groove (page step) jumps there, as the handle would."""
        if action in (QSlider.SliderAction.SliderPageStepAdd, QSlider.SliderAction.SliderPageStepSub):
            self.scrubbed.emit(self.slider.sliderPosition() / RESOLUTION)

    def show_state(self, at: float, end: float, live: bool, playing: bool = False) -> None:
        """Where the views are (``at``), how far the run goes (``end``), live or not."""
        if self.slider.isSliderDown():
            return  # the user holds the handle
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, round(end * RESOLUTION)))
        self.slider.setPageStep(max(1, round(end * RESOLUTION / 20)))
        self.slider.setValue(round(min(at, end) * RESOLUTION))
        self.slider.blockSignals(False)
        self.at.setText(f"{at:6.1f} s")
        if self.replay:
            self.end.setText(f"of {end:.1f} s")
            self.play.setText("Pause" if playing else "Play")
        else:
            self.end.setText("live" if live else f"back {end - at:.1f} s · now {end:.1f} s")
            self.live.setEnabled(not live)
