import base64
import io
import logging
import re
import smtplib
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from unittest.mock import patch

from psycopg2 import errors as pg_errors

from odoo.tests import tagged
from odoo.tests.common import BaseCase
from odoo.tools import mute_logger

from odoo.addons.sengerio_mailing import bounce
from odoo.addons.sengerio_mailing.models.sengerio_bounce_notice import (
    mail_failure_is_temporary,
    retry_delay,
)
from odoo.addons.sengerio_mailing.models.sengerio_generated_document import (
    RETENTION_PARAM,
)

from .common import SengerioMailCommon, build_dsn
from .test_bounce_trust import CARLA, SALLY, BounceCase

NOTICE_LOGGER = "odoo.addons.sengerio_mailing.models.sengerio_bounce_notice"


def wire_bytes(message):
    """The bytes smtplib puts on the wire for ``message`` (send_message)."""
    out = io.BytesIO()
    BytesGenerator(out).flatten(message, linesep="\r\n")
    return out.getvalue()


def smtp_violations(data):
    """What an RFC 5321 server without 8BITMIME refuses in DATA."""
    found = []
    if re.search(rb"(?<!\r)\n|\r(?!\n)", data):
        found.append("bare CR or LF")
    if any(len(line) > 998 for line in data.split(b"\r\n")):
        found.append("line over 998 octets")
    if not data.isascii():
        found.append("8-bit data")
    return found


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestNoticeNeverLost(BounceCase):
    """Temporary errors are retried until they succeed; the rest waits for an
    admin, who sees it in the Generated Documents app."""

    def _cron(self):
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self.env["sengerio.bounce.notice"]._cron_send_notices()

    def _queue(self):
        with self.mock_mail_gateway():
            self.env["mail.thread"].message_process(None, self._dsn())
        [notice] = self._notices()
        return notice

    def test_a_serialization_failure_is_retried(self):
        notice = self._queue()
        Notice = self.registry["sengerio.bounce.notice"]
        original = Notice._record_failures
        calls = []

        def record_failures(self_):
            calls.append(self_.id)
            if len(calls) == 1:
                raise pg_errors.SerializationFailure("could not serialize access")
            return original(self_)

        with (
            patch.object(Notice, "_record_failures", record_failures),
            self.assertLogs(NOTICE_LOGGER, logging.WARNING) as logs,
        ):
            self._cron()
            self.assertIn("not recorded yet", "\n".join(logs.output))
            self.assertEqual((notice.state, notice.attempts), ("pending", 1))
            self.assertTrue(notice.retry_at)
            self.assertEqual(self.entry.state, "sent")
            self.assertFalse(self._notice_emails())
            self._cron()
        self.assertEqual(notice.state, "sending")
        self.assertBounced()
        self.assertEqual(len(self._notice_emails()), 1)

    def test_the_notice_email_is_sent_again_after_the_mail_server_was_down(self):
        notice = self._queue()
        IrMailServer = self.registry["ir.mail_server"]
        with (
            patch.object(
                IrMailServer, "connect", side_effect=ConnectionRefusedError("down")
            ),
            mute_logger("odoo.addons.mail.models.mail_mail"),
        ):
            self._cron()
        self.assertEqual(notice.state, "sending")
        mail = self.env["mail.mail"].browse(notice.mail_id)
        self.assertEqual(mail.state, "exception")
        self.assertFalse(self._notice_emails())
        # Odoo's queue never retries a failed email: the notice cron does
        with self.assertLogs(NOTICE_LOGGER, logging.WARNING):
            self._cron()
        self.assertEqual((mail.state, notice.attempts), ("outgoing", 1))
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self.env["mail.mail"].process_email_queue(ids=[notice.mail_id])
        [email] = self._notice_emails()
        self.assertEqual(email["smtp_to_list"], [SALLY])
        self._cron()
        self.assertEqual(notice.state, "done")
        self.assertTrue(notice.told_date)
        self.assertFalse(mail.exists())

    def test_a_permanent_error_waits_for_an_admin(self):
        notice = self._queue()
        refused = smtplib.SMTPRecipientsRefused(
            {SALLY: (550, b"5.7.1 Relaying denied")}
        )
        with (
            patch.object(
                self.registry["ir.mail_server"], "send_email", side_effect=refused
            ),
            mute_logger("odoo.addons.mail.models.mail_mail"),
        ):
            self._cron()
        self._cron()
        self.assertBounced()
        self.assertEqual(notice.state, "error")
        self.assertIn("Relaying denied", notice.error)
        self.assertFalse(self._notice_emails())
        # the admin finds it in the Generated Documents app, not only in
        # developer mode
        menu = self.env.ref("sengerio_mailing.sengerio_bounce_notice_menu")
        self.assertEqual(
            menu.parent_id,
            self.env.ref("sengerio_mailing.sengerio_generated_document_menu_root"),
        )
        self.assertEqual(menu.groups_id, self.env.ref("base.group_system"))
        self.assertIn(notice, self.entry.notice_ids)
        # the cause fixed, the admin retries: the email goes, nothing else again
        notice.action_retry()
        self.assertEqual(notice.state, "sending")
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self.env["mail.mail"].process_email_queue(ids=[notice.mail_id])
        [email] = self._notice_emails()
        self.assertEqual(email["smtp_to_list"], [SALLY])
        self._cron()
        self.assertEqual(notice.state, "done")
        self.assertEqual(len(self.order.activity_ids), 1)

    def test_delayed_then_bounced_reads_as_a_history(self):
        delay = self._dsn(
            status="4.4.1", report_id="<delay-1@mx.client.example.com>"
        ).replace(b"Action: failed", b"Action: delayed")
        self._gateway(delay)
        self._gateway(self._dsn())
        self._cron()
        delayed, failed = self._notices().sorted("id")
        self.assertEqual((delayed.kind, delayed.state), ("delayed", "done"))
        self.assertEqual((failed.kind, failed.state), ("failed", "done"))
        self.assertTrue(delayed.told_date <= failed.recorded_date)
        self.assertEqual(self.entry.notice_ids, delayed | failed)

    def test_done_reports_follow_the_register_retention(self):
        self._gateway(self._dsn())
        self._cron()
        [notice] = self._notices()
        self.assertEqual(notice.state, "done")
        attachment = notice._report_attachments()
        self.assertTrue(attachment)
        Notice = self.env["sengerio.bounce.notice"]
        self.env["ir.config_parameter"].set_param(RETENTION_PARAM, 30)
        Notice._gc_retention()
        self.assertTrue(notice.exists(), "a recent report is kept")
        self.env.cr.execute(
            "UPDATE sengerio_bounce_notice SET create_date = now() - interval "
            "'31 days' WHERE id = %s",
            [notice.id],
        )
        self.env.invalidate_all()
        Notice._gc_retention()
        self.assertFalse(notice.exists())
        self.assertFalse(attachment.exists())


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestNoticeOnTheWire(SengerioMailCommon):
    """Whatever the report, the notice is valid SMTP and carries it."""

    def _returned(self, text):
        return (
            "Message-Id: <doc@agency.example.com>\nFrom: %s\nTo: %s\n"
            "Subject: Quotation\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\n%s\n" % (SALLY, CARLA, text)
        )

    def _build(self, report, **headers):
        return self.env["ir.mail_server"].build_email(
            "Agency <agency@example.com>",
            [SALLY],
            "Non recapitato: Preventivo è partito",
            "<p>Il tuo preventivo non è stato consegnato.</p>",
            subtype="html",
            attachments=[("delivery-report.eml", report, "message/rfc822")],
            headers=headers,
        )

    def test_any_report_makes_a_valid_notice(self):
        lf = build_dsn(self._returned("Hello."), CARLA, "bounce@example.com")
        crlf = build_dsn(
            self._returned("Hello."), CARLA, "bounce@example.com", linesep="\r\n"
        )
        reports = {
            "LF only": lf,
            "CRLF": crlf,
            "mixed": crlf[: len(crlf) // 2] + lf[len(lf) // 2 :],
            "bare CR": lf.replace(b"\n", b"\r"),
            "8-bit": build_dsn(
                self._returned("Città, perché: 10 €."), CARLA, "bounce@example.com"
            ),
            "long line": build_dsn(
                self._returned("x" * 5000), CARLA, "bounce@example.com"
            ),
            "multi-megabyte": build_dsn(
                self._returned(("y" * 76 + "\n") * 60000),
                CARLA,
                "bounce@example.com",
            ),
        }
        for name, report in reports.items():
            with self.subTest(report=name):
                wire = wire_bytes(self._build(report, **{bounce.NOTICE_HEADER: "1"}))
                self.assertEqual(smtp_violations(wire), [])
                [part] = message_from_bytes(wire, policy=policy.SMTP).iter_attachments()
                self.assertEqual(part.get_filename(), "delivery-report.eml")
                ctype = part.get_content_type()
                if ctype == "message/rfc822":
                    # sent as it is, with CRLF line endings
                    crlf_report = re.sub(rb"\r\n|\r|\n", b"\r\n", report)
                    self.assertIn(crlf_report.rstrip(), wire)
                    self.assertEqual(part["Content-Transfer-Encoding"], "7bit")
                else:
                    self.assertEqual(ctype, "message/global")
                    self.assertEqual(part["Content-Transfer-Encoding"], "base64")
                    self.assertEqual(bounce._message_part_bytes(part), report)
        self.assertEqual(
            [
                name
                for name, report in reports.items()
                if bounce.report_wire_form(report)[0] == "message/rfc822"
            ],
            ["LF only", "CRLF", "mixed", "bare CR", "multi-megabyte"],
        )

    def test_other_emails_are_left_as_odoo_builds_them(self):
        lf = build_dsn(self._returned("Hello."), CARLA, "bounce@example.com")
        wire = wire_bytes(self._build(lf))
        self.assertIn("bare CR or LF", smtp_violations(wire))


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestSmtpUtf8Reports(BounceCase):
    """RFC 6533 reports: message/global-delivery-status and message/global."""

    def _global_dsn(self, cte="8bit"):
        status = (
            "Reporting-MTA: dns; mx.città.example\n\n"
            "Final-Recipient: utf-8; %s\n"
            "Action: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 casella inesistente: già chiusa\n"
        ) % CARLA
        body = status.encode()
        if cte == "base64":
            body = base64.encodebytes(body)
        returned = self.sent.replace("\r\n", "\n")
        return (
            (
                "Delivered-To: %(to)s\nFrom: MAILER-DAEMON@mx.città.example\n"
                "To: %(to)s\nSubject: Messaggio non recapitato\n"
                "Message-Id: <dsn-utf8@mx.example>\nMIME-Version: 1.0\n"
                "Content-Type: multipart/report; report-type=global-delivery-status;"
                ' boundary="g"\n\n--g\nContent-Type: text/plain; charset=utf-8\n'
                "Content-Transfer-Encoding: 8bit\n\nNon è stato possibile.\n"
                "--g\nContent-Type: message/global-delivery-status\n"
                "Content-Transfer-Encoding: %(cte)s\n\n"
            )
            % {"to": self.bounce_to, "cte": cte}
        ).encode() + (
            body
            + b"\n--g\nContent-Type: message/global\n\n"
            + returned.encode()
            + b"\n--g--\n"
        )

    def test_global_delivery_status_is_read(self):
        for cte in ("8bit", "base64"):
            with self.subTest(cte=cte):
                report = bounce.read_bounce(
                    message_from_bytes(self._global_dsn(cte), policy=policy.SMTP)
                )
                [failure] = report.failed
                self.assertEqual((failure.email, failure.status), (CARLA, "5.1.1"))
                self.assertIn("già chiusa", failure.diagnostic)
                self.assertEqual(report.message_ids, [self.entry.message_id])

    def test_a_smtputf8_report_bounces_the_document(self):
        self._gateway(self._global_dsn())
        line = self.assertBounced()
        self.assertIn("già chiusa", line.dsn_diagnostic)
        [email] = self._notice_emails()
        self.assertEqual(email["smtp_to_list"], [SALLY])


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestRetryPolicy(BaseCase):
    def test_retry_delays_grow_then_repeat(self):
        self.assertEqual(
            [retry_delay(n) for n in range(1, 8)], [0, 5, 15, 30, 60, 60, 60]
        )

    def test_which_mail_failures_are_temporary(self):
        # connection refused: Odoo leaves no failure type on the email
        self.assertTrue(mail_failure_is_temporary(False, "Connection refused"))
        self.assertTrue(mail_failure_is_temporary("mail_smtp", "down"))
        self.assertTrue(
            mail_failure_is_temporary("unknown", "(451, b'4.7.1 Try again later')")
        )
        self.assertFalse(
            mail_failure_is_temporary(
                "unknown", "{'a@b.example': (550, b'5.7.1 Relaying denied')}"
            )
        )
        self.assertFalse(mail_failure_is_temporary("mail_email_invalid", "bad"))
