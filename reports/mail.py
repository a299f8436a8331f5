"""The email that carries a scheduled report's files (pure): one message to the template's recipients,
dated, with the report's headline figures in its body and the files attached, and a Message-ID made from
the run, so that a message sent again after a crash is recognisably the same one."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from reports.model import Report, display

__all__ = ["headline", "report_email"]

_TYPES = {".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _mime(name: str) -> tuple[str, str]:
    suffix = name[name.rfind(".") :]
    kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    main, sub = kind.split("/", 1)
    return main, sub


def headline(report: Report, most: int = 4) -> str:
    """The report's first figures as lines of text: what a reader sees before opening the attachment."""
    return "\n".join(
        f"  {figure.label}: {display(figure.kind, figure.value) or 'none'}"
        + (f" ({figure.detail})" if figure.detail else "")
        for figure in report.figures[:most]
    )


def report_email(
    sender: str,
    recipients: Sequence[str],
    subject: str,
    text: str,
    files: Sequence[tuple[str, bytes]],
    message_id: str,
    sent_at: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = format_datetime(sent_at, usegmt=True)
    message["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9.-]', '.', message_id)}@spendstream>"
    message.set_content(text)
    for name, content in files:
        main, sub = _mime(name)
        message.add_attachment(content, maintype=main, subtype=sub, filename=name)
    return message
