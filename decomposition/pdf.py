"""A small PDF writer for report.py: title, headings, paragraphs, monospace blocks and figures.

A thin layer over fpdf2 (requirements-dev.pip), imported only when a Report is made, so that the
rest of the kit runs without it. Monospace blocks and figures with their captions are kept on one
page; the file is written atomically, so a failed build leaves the previous PDF in place.
"""

from decomposition.files import write_atomically


class Report:
    """An A4 document written top to bottom."""

    def __init__(self):
        from fpdf import FPDF
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(True, margin=15)
        self.pdf.set_margins(18, 15, 18)
        self.pdf.add_page()

    def title(self, text):
        self.pdf.set_font("Helvetica", "B", 16)
        self.pdf.multi_cell(0, 9, text)
        self.pdf.ln(2)

    def heading(self, text):
        self.pdf.ln(3)
        self.pdf.set_font("Helvetica", "B", 12.5)
        self.pdf.multi_cell(0, 7, text)
        self.pdf.ln(1)

    def paragraph(self, text):
        self.pdf.set_font("Helvetica", "", 10)
        self.pdf.multi_cell(0, 5, text)
        self.pdf.ln(2)

    def monospace(self, text, size=8):
        """A block of fixed-width text (a table, a summary), kept on one page."""
        line_height = size * 0.45
        self.keep_together(line_height * (text.count("\n") + 1))
        self.pdf.set_font("Courier", "", size)
        self.pdf.multi_cell(0, line_height, text)
        self.pdf.ln(2)

    def figure(self, path, width, caption):
        """An image `width` mm wide, centred, with its caption in italics below it."""
        from PIL import Image
        with Image.open(path) as image:
            height = width * image.height / image.width
        self.keep_together(height + 12)  # the figure and its caption
        self.pdf.image(path, x=(self.pdf.w - width) / 2, w=width)
        self.pdf.set_font("Helvetica", "I", 9)
        self.pdf.multi_cell(0, 4.5, caption)
        self.pdf.ln(2)

    def keep_together(self, height):
        """Start a new page unless `height` mm still fit on this one."""
        if self.pdf.will_page_break(height):
            self.pdf.add_page()

    def save(self, path):
        write_atomically(path, self.pdf.output)
