"""E-mail over SMTP (aiosmtplib) to the configured server, one message per recipient."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from notification_service.config import Settings
from notification_service.delivery.webhook import DeliveryFailed


def build_message(
    *, sender: str, recipient: str, title: str, body: str, notification_id: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"[Flow] {title}"
    message["Message-ID"] = make_msgid(domain="flow.local")
    # Lets a mail client (or a support engineer) tie the mail to its notification.
    message["X-Flow-Notification"] = notification_id
    message.set_content(f"{body}\n\n-- \nFlow notifications. Manage them under Preferences.\n")
    return message


class EmailSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        settings = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=(
                    settings.smtp_password.get_secret_value()
                    if settings.smtp_password is not None
                    else None
                ),
                start_tls=settings.smtp_start_tls,
                use_tls=settings.smtp_use_tls,
                timeout=settings.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise DeliveryFailed(
                f"SMTP refused the recipient: {exc}", permanent=all(c >= 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx is the server's final word (unknown mailbox, ...); 4xx is "try later".
            raise DeliveryFailed(
                f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", permanent=False) from None
