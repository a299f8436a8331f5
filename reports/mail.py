"""The email that carries a scheduled report's files (pure): one message to the template's recipients,
the files attached, and a Message-ID made from the run, so that a message sent again after a crash is
recognisably the same one."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from email.message import EmailMessage

__all__ = ["report_email"]

_TYPES = {".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _mime(name: str) -> tuple[str, str]:
    suffix = name[name.rfind(".") :]
    kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    main, sub = kind.split("/", 1)
    return main, sub


def report_email(
    sender: str,
    recipients: Sequence[str],
    subject: str,
    text: str,
    files: Sequence[tuple[str, bytes]],
    message_id: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9.-]', '.', message_id)}@spendstream>"
    message.set_content(text)
    for name, content in files:
        main, sub = _mime(name)
        message.add_attachment(content, maintype=main, subtype=sub, filename=name)
    return message
