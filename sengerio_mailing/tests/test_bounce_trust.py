import logging
from contextlib import contextmanager
from email import message_from_bytes
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.sengerio_mailing import bounce

from .common import SengerioMailCommon, build_dsn

CARLA = "carla@client.example.com"
SALLY = "sally.sales@agency.example.com"
GATEWAY_LOGGERS = (
    "odoo.addons.mail.models.mail_thread",
    "odoo.addons.sengerio_mailing.models.mail_thread",
)


class BounceCase(SengerioMailCommon):
    """A quotation sent to Carla alone, and reports about it."""

    def setUp(self):
        super().setUp()
        self.order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                self.order.action_quotation_send(), self.user_sales
            )
        self.entry = self.env["sengerio.generated.document"].search(
            [("res_model", "=", "sale.order"), ("res_id", "=", self.order.id)]
        )
        self.assertEqual(self.entry.state, "sent")
        [self.sent] = [e["message"] for e in self.emails if CARLA in e["smtp_to_list"]]
        self.bounce_to = self.mail_alias_domain.bounce_email
        self.all_emails = []

    @contextmanager
    def mock_mail_gateway(self, mail_unlink_sent=False):
        """Odoo's mock, keeping what it sent across its uses in a test."""
        with super().mock_mail_gateway(mail_unlink_sent=mail_unlink_sent):
            try:
                yield
            finally:
                self.all_emails = getattr(self, "all_emails", []) + self.emails

    def _dsn(self, **kwargs):
        kwargs.setdefault("failed", CARLA)
        kwargs.setdefault("to", self.bounce_to)
        return build_dsn(self.sent, **kwargs)

    def _notice_emails(self):
        """The notices sent to senders since the quotation went out."""
        return [e for e in self.all_emails if bounce.NOTICE_HEADER in e["message"]]

    def _notices(self):
        return self.env["sengerio.bounce.notice"].search(
            [("document_id", "=", self.entry.id)]
        )

    def assertUntouched(self):
        """The entry, the document, Odoo's records and the sender: unchanged."""
        self.env.invalidate_all()
        self.assertEqual(self.entry.state, "sent")
        self.assertEqual(set(self.entry.recipient_ids.mapped("state")), {"sent"})
        self.assertFalse(self._notices())
        self.assertFalse(self.order.activity_ids)
        self.assertFalse(self._notice_emails())
        notifications = self.entry.mail_message_id.notification_ids
        self.assertEqual(set(notifications.mapped("notification_status")), {"sent"})
        self.assertEqual(self.customer.message_bounce, 0)

    def assertBounced(self, email=CARLA):
        self.env.invalidate_all()
        self.assertEqual(self.entry.state, "bounced")
        line = self.entry.recipient_ids.filtered(lambda r: r.email == email)
        self.assertEqual(line.state, "bounced")
        return line


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBounceTrust(BounceCase):
    """A report is believed only when it is about a real delivery."""

    def test_a_report_naming_someone_else_is_ignored(self):
        with (
            mute_logger("odoo.addons.mail.models.mail_thread"),
            self.assertLogs("odoo.addons.sengerio_mailing", logging.WARNING) as logs,
        ):
            self._gateway(self._dsn(failed="mallory@evil.example.com"))
        self.assertIn("not recipients", "\n".join(logs.output))
        self.assertUntouched()

    def test_a_quoted_message_id_is_not_believed(self):
        """Every customer knows the Message-Id of the email they got."""
        mid = self.entry.message_id
        forged = (
            "From: MAILER-DAEMON@mx.client.example.com\n"
            "To: %(to)s\nSubject: failure notice\n"
            "In-Reply-To: %(mid)s\nReferences: %(mid)s\n\n"
            "Hi. This is the qmail-send program at mx.client.example.com.\n"
            "I'm afraid I wasn't able to deliver your message to the following "
            "addresses.\nThis is a permanent error; I've given up. Sorry it didn't "
            "work out.\n\n<%(carla)s>:\nRemote host said: 550 5.1.1 <%(carla)s>: "
            "Recipient address rejected\nGiving up on 203.0.113.25.\n\n"
            "Your email was:\nMessage-ID: %(mid)s\n"
        ) % {"to": self.bounce_to, "mid": mid, "carla": CARLA}
        # a failure report, but it returns no email: only a quoted line
        report = bounce.read_bounce(message_from_bytes(forged.encode()))
        self.assertEqual([r.email for r in report.failed], [CARLA])
        self.assertEqual(report.message_ids, [])
        with mute_logger(*GATEWAY_LOGGERS):
            self._gateway(forged.encode())
        self.assertUntouched()

    def test_a_report_to_an_alias_is_not_believed(self):
        """From MAILER-DAEMON, but delivered to the sales alias."""
        alias = "sales@%s" % self.alias_domain
        with (
            mute_logger("odoo.addons.mail.models.mail_thread"),
            self.assertLogs("odoo.addons.sengerio_mailing", logging.WARNING) as logs,
        ):
            self._gateway(self._dsn(to=alias))
        self.assertIn("not to the bounce address", "\n".join(logs.output))
        self.assertUntouched()

    def test_an_oversized_diagnostic_is_cut_and_the_report_kept(self):
        diagnostic = "smtp; 550 5.1.1 " + "no such user " * 20000
        dsn = self._dsn(diagnostic=diagnostic)
        self._gateway(dsn)
        line = self.assertBounced()
        self.assertLessEqual(len(line.dsn_diagnostic), bounce.DIAGNOSTIC_LIMIT)
        self.assertLess(len(line.failure_reason), bounce.DIAGNOSTIC_LIMIT + 100)
        [notice] = self._notices()
        self.assertEqual(notice._report_attachments().raw, dsn)
        [email] = self._notice_emails()
        self.assertLess(len(email["message"]), len(dsn) * 3)

    def test_thousands_of_references_are_not_looked_up(self):
        references = " ".join("<ref-%s@elsewhere.example.com>" % i for i in range(5000))
        dsn = self._dsn(
            extra_headers="In-Reply-To: <ref-1@elsewhere.example.com>\n"
            "References: %s\n" % references
        )
        Thread = self.registry["mail.thread"]
        with patch.object(
            Thread,
            "_sengerio_bounced_entry",
            autospec=True,
            side_effect=Thread._sengerio_bounced_entry,
        ) as lookup:
            self._gateway(dsn)
        [ids] = [call.args[1] for call in lookup.call_args_list]
        self.assertEqual(ids, [self.entry.message_id])
        self.assertBounced()

    def test_forwarded_address_bounces_by_its_original_recipient(self):
        """Carla's address forwards to a dead mailbox: Final-Recipient is that."""
        self._gateway(
            self._dsn(failed="carla.old@forward.example.net", original_recipient=CARLA)
        )
        line = self.assertBounced()
        self.assertEqual(line.dsn_status, "5.1.1")
        [email] = self._notice_emails()
        self.assertEqual(email["smtp_to_list"], [SALLY])
        # Odoo blames the customer it sent to, not the forwarding target
        self.assertEqual(self.customer.message_bounce, 1)

    def test_an_ordinary_reply_is_never_a_bounce_when_detection_fails(self):
        reply = (
            "From: Carla Customer <%s>\nTo: %s\nSubject: Re: your quotation\n"
            "Message-Id: <reply-1@client.example.com>\nIn-Reply-To: %s\n"
            "References: %s\nContent-Type: text/plain\n\nThank you, we accept.\n"
        ) % (
            CARLA,
            "catchall@%s" % self.alias_domain,
            self.entry.message_id,
            self.entry.message_id,
        )
        Thread = self.registry["mail.thread"]
        with (
            patch.object(Thread, "_detect_is_bounce", side_effect=ValueError("odd")),
            mute_logger("odoo.addons.sengerio_mailing.models.mail_thread"),
        ):
            self._gateway(reply.encode())
        self.assertIn(
            "Thank you, we accept.", "\n".join(self.order.message_ids.mapped("body"))
        )


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBounceOnce(BounceCase):
    """The same report, however often it comes, is handled once."""

    def test_the_same_report_twice_is_handled_once(self):
        dsn = self._dsn()
        self._gateway(dsn)
        with self.assertLogs("odoo.addons.sengerio_mailing", logging.INFO) as logs:
            self._gateway(dsn)
        self.assertIn("already handled", "\n".join(logs.output))
        # fetched again with one more trace header: the same report
        self._gateway(b"Received: by mx.agency.example.com; again\n" + dsn)
        self.assertBounced()
        self.assertEqual(len(self._notices()), 1)
        self.assertEqual(len(self._notice_emails()), 1)
        self.assertEqual(len(self.order.activity_ids), 1)
        self.assertEqual(self.customer.message_bounce, 1)

    def test_a_report_queued_twice_at_once_is_kept_once(self):
        """Two gateways handling the same report at the same time."""
        Notice = self.env["sengerio.bounce.notice"].sudo()
        failure = bounce.RecipientReport(CARLA, "failed", "5.1.1", "550 5.1.1")
        args = (self.entry, "failed", [failure], b"report", "k", "<r>")
        first = Notice._queue(*args)
        with self.assertLogs(
            "odoo.addons.sengerio_mailing.models.sengerio_bounce_notice", logging.INFO
        ):
            again = Notice._queue(*args)
        self.assertFalse(again)
        self.assertEqual(self._notices(), first)
        self.assertEqual(first._report_attachments().raw, b"report")
        # the transaction goes on: Odoo's own bounce handling is not lost
        self.assertEqual(self.entry.state, "sent")

    def test_a_report_that_cannot_be_kept_still_reaches_the_sender(self):
        Attachment = self.registry["ir.attachment"]
        with (
            patch.object(Attachment, "create", side_effect=OSError("disk full")),
            self.assertLogs("odoo.addons.sengerio_mailing", logging.ERROR),
        ):
            self._gateway(self._dsn())
        self.assertBounced()
        [email] = self._notice_emails()
        self.assertEqual(email["smtp_to_list"], [SALLY])

    def test_a_new_report_about_the_same_failure_is_told_again(self):
        self._gateway(self._dsn())
        self._gateway(self._dsn(report_id="<dsn-2@mx.client.example.com>"))
        self.assertEqual(len(self._notices()), 2)
        self.assertEqual(len(self._notice_emails()), 2)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBounceLeftToOdoo(SengerioMailCommon):
    """Emails that are no generated document bounce as Odoo handles them."""

    def test_mass_mailing_delay_still_marks_its_trace(self):
        if "mailing.trace" not in self.env:
            self.skipTest("mass_mailing is not installed")
        mailing = self.env["mailing.mailing"].create(
            {
                "subject": "Autumn tours",
                "body_html": "<p>Autumn tours</p>",
                "mailing_model_id": self.env["ir.model"]._get_id("res.partner"),
            }
        )
        trace = self.env["mailing.trace"].create(
            {
                "mass_mailing_id": mailing.id,
                "model": "res.partner",
                "res_id": self.customer.id,
                "email": CARLA,
                "message_id": "<mailing-1@agency.example.com>",
                "trace_status": "sent",
            }
        )
        returned = "Message-Id: <mailing-1@agency.example.com>\nTo: %s\n" % CARLA
        dsn = build_dsn(
            returned, CARLA, self.mail_alias_domain.bounce_email, status="4.4.1"
        ).replace(b"Action: failed", b"Action: delayed")
        self._gateway(dsn)
        self.assertEqual(trace.trace_status, "bounce")
