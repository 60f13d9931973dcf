"""The layout of answers.pdf: a document is a list of blocks, a block a list of items kept on one
page (a heading with its lead-in and table never split).

    report = Report()
    report.add(Heading("Question 1"), Paragraph("..."), Table(["a", "b"], [["1", "2"]]))
    report.add(Figure(matplotlib_figure, "caption"))
    report.save("answers.pdf")

A thin layer over fpdf2 (requirements-dev.pip), imported only when a Report is made. Tables are
fpdf2 tables no wider than the text block; figures are placed at the size they were drawn, so that
their text prints at the size it was set (decomposition.answers_figures sets it at 7 pt or more).
The file is written atomically: a failed build leaves the previous PDF in place.
"""

import io
from dataclasses import dataclass, field

from decomposition.files import write_atomically

BODY = 9.5
"""pt: paragraphs"""
TABLE = 8.5
"""pt: tables"""
CAPTION = 8.5
"""pt: figure captions"""
MARGIN = 18
"""mm: left and right; the text block of an A4 page is 174 mm wide"""
TEXT_WIDTH = 210 - 2 * MARGIN
DPI = 200
"""figures' resolution"""
FLOW = 70
"""mm: text and tables that do not fit flow onto the next page where this much of the page is left
(a figure, or text with less room, starts a new page)"""


@dataclass
class Heading:
    text: str
    size: float = 11.5

    def draw(self, pdf):
        if pdf.get_y() > pdf.t_margin + 1:
            pdf.ln(1.5)
        pdf.set_font("Helvetica", "B", self.size)
        pdf.multi_cell(0, self.size * 0.52, self.text)
        pdf.ln(1)


@dataclass
class Part(Heading):
    """A part's title on a new page (the first part starts the document)."""
    size: float = 15

    def draw(self, pdf):
        if pdf.page == 0 or pdf.get_y() > pdf.t_margin + 1:
            pdf.add_page()
        super().draw(pdf)


@dataclass
class Paragraph:
    """Text, with **bold** and `code` (a command, in Courier) marked as in markdown."""
    text: str
    size: float = BODY
    style: str = ""
    """"I" for italics"""

    def draw(self, pdf):
        height = self.size * 0.47
        pdf.set_x(pdf.l_margin)
        for k, span in enumerate(self.text.split("`")):
            for j, words in enumerate(span.split("**") if k % 2 == 0 else [span]):
                if k % 2:
                    pdf.set_font("Courier", "", self.size)
                else:
                    pdf.set_font("Helvetica", self.style + ("B" if j % 2 else ""), self.size)
                pdf.write(height, words)
        pdf.ln(height + 1.5)


@dataclass
class Table:
    """A table: a row of headers, rows of cells (text); widths are relative (None: equal); a column
    whose cells all read as numbers is right-aligned; rows in `bold` (their indices) are bold."""
    headers: list
    rows: list
    widths: tuple = None
    bold: tuple = ()
    code: tuple = ()
    """the columns (indices) of commands, set in Courier"""
    width: float = TEXT_WIDTH
    """mm"""

    def draw(self, pdf, x=None):
        from fpdf.fonts import FontFace
        pdf.set_font("Helvetica", "", TABLE)
        align = tuple("RIGHT" if all(numeric(row[k]) for row in self.rows) else "LEFT"
                      for k in range(len(self.headers)))
        margin = pdf.l_margin
        if x is not None:
            pdf.set_left_margin(x)
            pdf.set_x(x)
        try:
            with pdf.table(col_widths=self.widths, width=self.width, align="LEFT", text_align=align,
                           line_height=TABLE * 0.5, padding=(0.6, 1.2), borders_layout="HORIZONTAL_LINES",
                           headings_style=FontFace(emphasis="BOLD", fill_color=(232, 232, 232))) as table:
                heading = table.row()
                for text in self.headers:
                    heading.cell(text)
                for k, cells in enumerate(self.rows):
                    row = table.row()
                    for j, text in enumerate(cells):
                        row.cell(str(text), style=FontFace(family="Courier") if j in self.code else
                                 FontFace(emphasis="BOLD") if k in self.bold else None)
        finally:
            pdf.set_left_margin(margin)
        pdf.ln(2)


def numeric(text):
    """Whether a cell reads as a number (with a sign, an interval or a fraction after it)."""
    head = str(text).split(" ")[0].replace("/", "").replace(",", "").lstrip("+-")
    return head.replace(".", "", 1).isdigit() or str(text) in ("-", "")


@dataclass
class Tables:
    """Tables side by side, in columns of the text block, two rows of two for four."""
    tables: list
    columns: int = 2
    gap: float = 6
    """mm between columns"""

    def draw(self, pdf):
        width = (TEXT_WIDTH - self.gap * (self.columns - 1)) / self.columns
        for start in range(0, len(self.tables), self.columns):
            top, bottom = pdf.get_y(), pdf.get_y()
            for k, table in enumerate(self.tables[start:start + self.columns]):
                pdf.set_y(top)
                table.width = width
                table.draw(pdf, x=MARGIN + k * (width + self.gap))
                bottom = max(bottom, pdf.get_y())
            pdf.set_y(bottom)


@dataclass
class Figure:
    """A matplotlib figure placed at the size it was drawn (at most the text block's width), with its
    caption below it."""
    figure: object
    caption: str
    png: bytes = field(default=None, repr=False)

    def draw(self, pdf):
        import matplotlib.pyplot as plt
        if self.png is None:
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=DPI)
            plt.close(self.figure)
            self.png = buffer.getvalue()
        width, height = (inches * 25.4 for inches in self.figure.get_size_inches())
        if width > TEXT_WIDTH + 0.5:
            raise ValueError(f"a figure {width:.0f} mm wide is wider than the text block ({TEXT_WIDTH} mm)")
        pdf.image(io.BytesIO(self.png), x=(pdf.w - width) / 2, w=width, h=height)
        Paragraph(self.caption, CAPTION, "I").draw(pdf)


class Report:
    """An A4 document written top to bottom, block by block."""

    def __init__(self):
        from fpdf import FPDF
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(True, margin=14)
        self.pdf.set_margins(MARGIN, 14, MARGIN)

    def add(self, *items):
        """Draw the items on one page: on a new page where they do not fit on this one (a block
        longer than a page flows on)."""
        if self.pdf.page == 0:
            self.pdf.add_page()
        with self.pdf.offset_rendering() as trial:
            for item in items:
                item.draw(trial)
        room = self.pdf.h - self.pdf.b_margin - self.pdf.get_y()
        flows = all(isinstance(item, (Heading, Paragraph, Table)) and not isinstance(item, Part) for item in items) \
            and room > FLOW
        if trial.page_break_triggered and self.pdf.get_y() > self.pdf.t_margin + 1 and not flows \
                and not isinstance(items[0], Part):
            self.pdf.add_page()
        for item in items:
            item.draw(self.pdf)

    def save(self, path):
        write_atomically(path, self.pdf.output)
