"""What the clinician searches by: the query form. It builds QueryKeys; it sends nothing itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ...core import validation
from ...core.query import DatePreset
from ...core.records import QueryKeys

MODALITIES = ["CT", "MR", "CR", "DX", "US", "XA", "MG", "NM", "PT", "RF", "OT", "SR"]
_ANY, _RANGE = "any", "range"
# Item data are plain strings (Qt turns a str enum into str): the preset's value, or _ANY / _RANGE.
_DATE_CHOICES = [("Any date", _ANY), ("Today", DatePreset.TODAY.value), ("Yesterday", DatePreset.YESTERDAY.value),
                 ("Last 7 days", DatePreset.LAST_7_DAYS.value), ("Last 30 days", DatePreset.LAST_30_DAYS.value),
                 ("From … to …", _RANGE)]


# What each typed field must be (core.validation), checked as the user types.
_RULES: dict[str, Callable[[str, str], object]] = {
    "patient_name": lambda text, field: validation.text_key(text, field, 200, private=True),
    "patient_id": lambda text, field: validation.text_key(text, field, 64, private=True),
    "birth_date": lambda text, field: validation.date_range(text, field, private=True),
    "accession": lambda text, field: validation.text_key(text, field, 16),
    "description": lambda text, field: validation.text_key(text, field, 64),
    "referring": lambda text, field: validation.text_key(text, field, 200, private=True),
    "study_uid": lambda text, field: validation.uid_list(text, field) if text.strip() else "",
}
_INVALID_STYLE = "border: 1px solid #b3261e;"


class QueryForm(QWidget):
    search_requested = Signal(object)  # QueryKeys
    cancel_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.patient_name = QLineEdit()
        self.patient_name.setObjectName("patientName")
        self.patient_name.setPlaceholderText("e.g. smith, smith^jo, müller")
        self.patient_name.setToolTip("Family name first; matches names that start with what you type, "
                                     "in any case. Use * and ? for other patterns.")
        self.patient_id = QLineEdit()
        self.birth_date = QLineEdit()
        self.birth_date.setPlaceholderText("YYYYMMDD or a range")
        self.accession = QLineEdit()
        self.description = QLineEdit()
        self.description.setPlaceholderText("e.g. *thorax*")
        self.referring = QLineEdit()
        self.study_uid = QLineEdit()
        self.study_uid.setObjectName("studyUid")
        self.study_uid.setPlaceholderText("1.2.840… (digits and dots)")
        self.date_choice = QComboBox()
        self.date_choice.setObjectName("studyDate")
        for text, value in _DATE_CHOICES:
            self.date_choice.addItem(text, value)
        self.date_from = QDateEdit(QDate.currentDate().addDays(-7))
        self.date_to = QDateEdit(QDate.currentDate())
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.modality_boxes: dict[str, QCheckBox] = {}
        modalities = QHBoxLayout()
        modalities.setSpacing(8)
        for modality in MODALITIES:
            box = QCheckBox(modality)
            self.modality_boxes[modality] = box
            modalities.addWidget(box)
        modalities.addStretch(1)
        self.level_study = QRadioButton("Studies")
        self.level_patient = QRadioButton("Patients")
        self.level_study.setChecked(True)
        levels = QButtonGroup(self)
        levels.addButton(self.level_study)
        levels.addButton(self.level_patient)
        self.search_button = QPushButton("Search")
        self.search_button.setObjectName("searchButton")
        self.search_button.setDefault(True)
        self.search_button.setToolTip("Search (Enter)")
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop the running search (Esc)")
        self.cancel_button.setEnabled(False)
        self.clear_button = QPushButton("Clear")
        self.problem = QLabel("")
        self.problem.setStyleSheet("color: #b3261e;")

        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.addWidget(QLabel("Patient name:"), 0, 0)
        self.hints: dict[str, QLabel] = {}  # field name -> the rule shown under it while it is broken
        grid.addWidget(self._with_hint("patient_name"), 0, 1)
        grid.addWidget(QLabel("Patient ID:"), 0, 2)
        grid.addWidget(self._with_hint("patient_id"), 0, 3)
        grid.addWidget(QLabel("Birth date:"), 0, 4)
        grid.addWidget(self._with_hint("birth_date"), 0, 5)
        grid.addWidget(QLabel("Accession:"), 1, 0)
        grid.addWidget(self._with_hint("accession"), 1, 1)
        grid.addWidget(QLabel("Description:"), 1, 2)
        grid.addWidget(self._with_hint("description"), 1, 3)
        grid.addWidget(QLabel("Referring:"), 1, 4)
        grid.addWidget(self._with_hint("referring"), 1, 5)
        dates = QHBoxLayout()
        dates.addWidget(self.date_choice)
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        dates.addStretch(1)
        grid.addWidget(QLabel("Study date:"), 2, 0)
        grid.addLayout(dates, 2, 1, 1, 3)
        level_box = QHBoxLayout()
        level_box.addWidget(QLabel("Find:"))
        level_box.addWidget(self.level_study)
        level_box.addWidget(self.level_patient)
        level_box.addStretch(1)
        grid.addLayout(level_box, 2, 4, 1, 2)
        grid.addWidget(QLabel("Modality:"), 3, 0)
        grid.addLayout(modalities, 3, 1, 1, 5)
        grid.addWidget(QLabel("Study UID:"), 4, 0)
        grid.addWidget(self._with_hint("study_uid"), 4, 1, 1, 3)
        for column in (1, 3, 5):
            grid.setColumnStretch(column, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.problem, 1)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.search_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(grid)
        layout.addLayout(buttons)

        self.search_button.clicked.connect(self.request_search)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.clear_button.clicked.connect(self.clear)
        for edit in (self.patient_name, self.patient_id, self.birth_date, self.accession, self.description,
                     self.referring, self.study_uid):
            edit.returnPressed.connect(self.request_search)
        for attribute in _RULES:
            getattr(self, attribute).textChanged.connect(self.check_fields)
        self._running = False
        self.date_choice.currentIndexChanged.connect(self._date_choice_changed)
        self.level_patient.toggled.connect(self._level_changed)
        self._date_choice_changed()

    # -- state -------------------------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._running = running
        self.search_button.setEnabled(not running and not self.field_problems())
        self.cancel_button.setEnabled(running)

    # -- checking as the user types ------------------------------------------------------------------------
    def _with_hint(self, attribute: str) -> QWidget:
        """The field with its rule under it (hidden while the field is valid)."""
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(1)
        hint = QLabel("")
        hint.setObjectName(f"{attribute}Hint")
        hint.setStyleSheet("color: #b3261e;")
        hint.setWordWrap(True)
        hint.hide()
        self.hints[attribute] = hint
        column.addWidget(getattr(self, attribute))
        column.addWidget(hint)
        return box

    def field_problems(self) -> dict[str, str]:
        """field name -> the rule its text breaks, for the enabled fields."""
        problems = {}
        for attribute, rule in _RULES.items():
            edit: QLineEdit = getattr(self, attribute)
            if not edit.isEnabled():
                continue
            try:
                rule(edit.text(), attribute)
            except validation.InvalidInput as exc:
                problems[attribute] = exc.rule
        return problems

    def check_fields(self) -> bool:
        """Show each broken field's rule next to it; Search only while every field is valid."""
        problems = self.field_problems()
        for attribute, hint in self.hints.items():
            text = problems.get(attribute, "")
            hint.setText(text)
            hint.setVisible(bool(text))
            getattr(self, attribute).setStyleSheet(_INVALID_STYLE if text else "")
        self.search_button.setEnabled(not self._running and not problems)
        return not problems

    def focus_search(self) -> None:
        self.patient_name.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.patient_name.selectAll()

    def clear(self) -> None:
        for edit in (self.patient_name, self.patient_id, self.birth_date, self.accession, self.description,
                     self.referring, self.study_uid):
            edit.clear()
        for box in self.modality_boxes.values():
            box.setChecked(False)
        self.date_choice.setCurrentIndex(0)
        self.problem.clear()

    def set_date_preset(self, preset: DatePreset | str) -> None:
        value = preset if preset in (_ANY, _RANGE) else DatePreset(preset).value
        self.date_choice.setCurrentIndex(self.date_choice.findData(value))

    def _date_choice_changed(self) -> None:
        is_range = self.date_choice.currentData() == _RANGE
        self.date_from.setEnabled(is_range)
        self.date_to.setEnabled(is_range)

    def _level_changed(self) -> None:
        study_only = not self.level_patient.isChecked()
        for widget in (self.accession, self.description, self.referring, self.study_uid, self.date_choice,
                       *self.modality_boxes.values()):
            widget.setEnabled(study_only)
        self.check_fields()
        if study_only:
            self._date_choice_changed()
        else:
            self.date_from.setEnabled(False)
            self.date_to.setEnabled(False)

    # -- building the query -------------------------------------------------------------------------------
    def study_date(self) -> object:
        choice = self.date_choice.currentData()
        if choice == _ANY:
            return ""
        if choice == _RANGE:
            first = self.date_from.date().toPython()
            last = self.date_to.date().toPython()
            if first > last:
                first, last = last, first
            return (first, last)
        return DatePreset(choice).dicom(date.today())

    def keys(self) -> QueryKeys:
        """The QueryKeys the form describes (ValueError in words if something is not valid)."""
        if self.level_patient.isChecked():
            keys = QueryKeys.patients(patient_name=self.patient_name.text(), patient_id=self.patient_id.text(),
                                      birth_date=self.birth_date.text())
        else:
            keys = QueryKeys.studies(
                patient_name=self.patient_name.text(), patient_id=self.patient_id.text(),
                birth_date=self.birth_date.text(), study_date=self.study_date(),
                accession_number=self.accession.text(),
                modalities=[m for m, box in self.modality_boxes.items() if box.isChecked()],
                study_description=self.description.text(), referring_physician=self.referring.text(),
                study_instance_uid=self.study_uid.text().strip(),
            )
        return validation.query_keys(keys)

    def is_unbounded(self) -> bool:
        """No key and no date: the PACS would answer with everything it holds."""
        texts = [self.patient_name.text(), self.patient_id.text(), self.birth_date.text()]
        if not self.level_patient.isChecked():
            texts += [self.accession.text(), self.description.text(), self.referring.text(), self.study_uid.text()]
            if self.date_choice.currentData() != _ANY:
                return False
            if any(box.isChecked() for box in self.modality_boxes.values()):
                return False
        return not any(t.strip().strip("*") for t in texts)

    def request_search(self) -> None:
        if not self.check_fields():  # Enter in a field while one is invalid: the rule is on show
            return
        try:
            keys = self.keys()
        except ValueError as exc:
            self.problem.setText(str(exc))
            return
        self.problem.clear()
        self.search_requested.emit(keys)
