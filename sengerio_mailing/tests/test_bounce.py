import base64
import json
import logging
from email import message_from_string, policy
from email.utils import format_datetime
from pathlib import Path
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged
from odoo.tools import file_path, mute_logger

from odoo.addons.sengerio_mailing import bounce

from .common import SengerioMailCommon

CORPUS = Path(file_path("sengerio_mailing/tests/data"), "dsn")
SALLY = "sally.sales@agency.example.com"
CARLA = "carla@client.example.com"
CESARE = "cesare@client.example.com"
BOUNCED_KINDS = {"hard", "soft_final", "multi", "rfc2047"}


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBounceCorpus(SengerioMailCommon):
    """Every DSN of the corpus goes through Odoo's real mail gateway."""

    def _send_quotation(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(),
                self.user_sales,
                partner_ids=[(6, 0, (self.customer | self.customer_2).ids)],
            )
        entry = self.env["sengerio.generated.document"].search(
            [("res_model", "=", "sale.order"), ("res_id", "=", order.id)]
        )
        self.assertEqual(entry.state, "sent")
        return order, entry

    def _render(self, name, message_id):
        template = (CORPUS / name).read_text()
        return template.format(
            bounce_to=self.mail_alias_domain.bounce_email,
            domain=self.alias_domain,
            message_id=message_id,
            recipient=CARLA,
            recipient2=CESARE,
            sender=SALLY,
            subject="Quotation S00042",
            date=format_datetime(fields.Datetime.now()),
        ).encode()

    def _process(self, raw):
        self._gateway(raw)

    def _line(self, entry, email):
        return entry.recipient_ids.filtered(lambda r: r.email == email)

    def _notices(self):
        return [
            m for m in self._mails if bounce.NOTICE_HEADER in (m.get("headers") or {})
        ]

    def test_corpus(self):
        manifest = json.loads((CORPUS / "manifest.json").read_text())
        self.assertGreaterEqual(len(manifest), 15)
        for sample in manifest:
            with self.subTest(sample=sample["file"]):
                self._check_sample(sample)

    def _check_sample(self, sample):
        kind = sample["kind"]
        order, entry = self._send_quotation()
        message_id = entry.message_id
        if kind == "never_document":
            message_id = order.message_post(body="Just a note").message_id
        carla = self.customer
        bounce_before = carla.message_bounce
        # numeric level: Odoo names its level 25 "INFO" too
        with self.assertLogs("odoo.addons.sengerio_mailing", logging.INFO) as logs:
            self._process(self._render(sample["file"], message_id))
        entry.invalidate_recordset()
        self.assertTrue(logs.output, "one clear log line per bounce")
        failed = [
            {"recipient": CARLA, "recipient2": CESARE, "sender": SALLY}[p]
            for p in sample.get("failed") or []
        ]

        if kind in BOUNCED_KINDS or (kind == "no_dsn_part" and CARLA in failed):
            self.assertEqual(entry.state, "bounced")
            line = self._line(entry, CARLA)
            self.assertEqual(line.state, "bounced")
            if sample.get("status"):
                self.assertEqual(line.dsn_status, sample["status"])
                self.assertTrue(line.bounce_reason)
                self.assertIn(line.bounce_reason, line.failure_reason)
            self.assertEqual(self._line(entry, CESARE).state, "sent")
            # Odoo's own records: notification bounced, partner counter up
            notif = entry.mail_message_id.notification_ids.filtered(
                lambda n: n.res_partner_id == carla
            )
            self.assertEqual(notif.notification_status, "bounce")
            self.assertEqual(carla.message_bounce, bounce_before + 1)
            # back to the sender, with the DSN attached
            [notice] = self._notices()
            self.assertEqual(notice["email_to"], [SALLY])
            self.assertIn(order.name, notice["subject"])
            self.assertIn(CARLA, notice["body"])
            [(name, _content, mimetype)] = notice["attachments"]
            self.assertEqual(mimetype, "message/rfc822")
            # the team sees it on the document
            self.assertIn(CARLA, order.message_ids[0].body)
            self.assertTrue(
                order.activity_ids.filtered(lambda a: a.user_id == self.user_sales)
            )
        else:
            self.assertEqual(entry.state, "sent", "nothing bounced")
            self.assertEqual(set(entry.recipient_ids.mapped("state")), {"sent"})
            if kind in ("unknown_message_id", "never_document"):
                # the address did bounce: Odoo counts it on the partner, as usual
                self.assertEqual(carla.message_bounce, bounce_before + 1)
            else:
                self.assertEqual(carla.message_bounce, bounce_before)
            self.assertFalse(self._notices())
            if kind == "delayed":
                self.assertIn("delayed", order.message_ids[0].body)
            if kind == "bcc_bounce":
                self.assertIn(SALLY, entry.bcc_note)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBounceGuards(SengerioMailCommon):
    def _dsn(self, original, failed, status="5.1.1"):
        """A minimal RFC 3464 report about ``original`` (bytes)."""
        boundary = "sengerio-test-boundary"
        return (
            "From: MAILER-DAEMON@mx.client.example.com\n"
            "To: %(to)s\n"
            "Subject: Undelivered Mail Returned to Sender\n"
            "Message-Id: <dsn-%(n)s@mx.client.example.com>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status;\n"
            ' boundary="%(b)s"\n'
            "\n--%(b)s\nContent-Type: text/plain\n\nDelivery failed.\n"
            "\n--%(b)s\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.client.example.com\n\n"
            "Final-Recipient: rfc822; %(failed)s\nAction: failed\nStatus: %(status)s\n"
            "Diagnostic-Code: smtp; 550 %(status)s no such user\n"
            "\n--%(b)s\nContent-Type: message/rfc822\n\n%(original)s\n--%(b)s--\n"
        ) % {
            "to": self.mail_alias_domain.bounce_email,
            "n": id(original),
            "b": boundary,
            "failed": failed,
            "status": status,
            "original": original.decode(),
        }

    def test_bounce_of_a_bounce_notice_is_not_forwarded(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        carla_email = [e for e in self.emails if CARLA in e["smtp_to_list"]][0]
        self._gateway(self._dsn(carla_email["message"].encode(), CARLA).encode())
        [notice] = [e for e in self.emails if bounce.NOTICE_HEADER in e["message"]]
        self.assertEqual(notice["smtp_to_list"], [SALLY])
        # one email for the sender: the activity does not send its own
        self.assertEqual(
            [e for e in self.emails if SALLY in e["smtp_to_list"]], [notice]
        )
        # the notice itself bounces: nothing is forwarded again
        with (
            mute_logger("odoo.addons.mail.models.mail_thread"),
            self.assertLogs("odoo.addons.sengerio_mailing", logging.INFO) as logs,
        ):
            self._gateway(self._dsn(notice["message"].encode(), SALLY).encode())
        # the loop guard recognised its own notice
        self.assertIn("returns a bounce notice", "\n".join(logs.output))
        self.assertFalse(
            [e for e in self.emails if bounce.NOTICE_HEADER in e["message"]]
        )

    def _sent_to_carla(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        carla_email = [e for e in self.emails if CARLA in e["smtp_to_list"]][0]
        return order, self._dsn(carla_email["message"].encode(), CARLA).encode()

    def test_gateway_queues_and_the_cron_records_and_tells(self):
        order, dsn = self._sent_to_carla()
        entry = self.env["sengerio.generated.document"].search(
            [("res_id", "=", order.id), ("res_model", "=", "sale.order")]
        )
        cron = self.env.ref("sengerio_mailing.ir_cron_bounce_notices")
        self.assertEqual((cron.interval_number, cron.interval_type), (1, "minutes"))
        with self.mock_mail_gateway():
            self.env["mail.thread"].message_process(None, dsn)
        # the gateway only queues the bounce for the cron
        self.assertEqual(entry.state, "sent")
        [notice] = self.env["sengerio.bounce.notice"].search([])
        self.assertEqual(notice.document_id, entry)
        self.assertEqual(
            [(r.email, r.status) for r in notice._recipient_reports()],
            [(CARLA, "5.1.1")],
        )
        self.assertIn(CARLA, notice.recipients_text)
        # the report is kept as received, not serialised again
        self.assertTrue(
            base64.b64decode(notice.report) == dsn, "the DSN bytes were changed"
        )
        # in the filestore, not in the database's log
        attachment = notice._report_attachments()
        self.assertEqual(attachment.mimetype, "message/rfc822")
        self.assertTrue(attachment.store_fname)
        self.assertFalse(
            [e for e in self.emails if bounce.NOTICE_HEADER in e["message"]]
        )
        self.assertFalse(order.activity_ids)
        with self.mock_mail_gateway():
            cron.method_direct_trigger()
        [notice_email] = [
            e for e in self.emails if bounce.NOTICE_HEADER in e["message"]
        ]
        self.assertEqual(notice_email["smtp_to_list"], [SALLY])
        self.assertEqual(entry.state, "bounced")
        self.assertEqual(entry.recipient_ids.dsn_status, "5.1.1")
        self.assertTrue(order.activity_ids)
        # the very attachment the notice keeps went with the email
        [mail] = [m for m in self._mails if m["email_to"] == [SALLY]]
        [(name, content, mimetype)] = mail["attachments"]
        self.assertEqual((name, mimetype), (attachment.name, "message/rfc822"))
        self.assertTrue(content == dsn, "the DSN bytes were changed")
        self.assertEqual(notice.state, "sending")
        self.assertTrue(notice.recorded_date)
        self.assertFalse(notice.told_date)
        # the next run sees the email sent: the notice stays, as the log
        with self.mock_mail_gateway(mail_unlink_sent=True):
            cron.method_direct_trigger()
        self.assertEqual(notice.state, "done")
        self.assertTrue(notice.told_date)
        self.assertIn(CARLA, notice.outcome)
        self.assertFalse(self.env["mail.mail"].sudo().browse(notice.mail_id).exists())
        self.assertEqual(notice._report_attachments(), attachment)
        self.assertEqual(entry.notice_ids, notice)

    def test_report_kept_in_the_database_storage(self):
        """With attachments stored in the database, the report goes there."""
        self.env["ir.config_parameter"].sudo().set_param("ir_attachment.location", "db")
        order, dsn = self._sent_to_carla()
        with self.mock_mail_gateway():
            self.env["mail.thread"].message_process(None, dsn)
        [notice] = self.env["sengerio.bounce.notice"].search([])
        attachment = notice._report_attachments()
        self.assertFalse(attachment.store_fname)
        self.assertEqual(attachment.raw, dsn)
        with self.mock_mail_gateway():
            self.env["sengerio.bounce.notice"]._cron_send_notices()
        [notice_mail] = [
            m for m in self._mails if bounce.NOTICE_HEADER in (m.get("headers") or {})
        ]
        [(_name, content, _mimetype)] = notice_mail["attachments"]
        self.assertTrue(content == dsn, "the DSN bytes were changed")

    def test_a_failing_notice_is_kept_and_logged(self):
        order, dsn = self._sent_to_carla()
        order_2, dsn_2 = self._sent_to_carla()
        with self.mock_mail_gateway():
            Thread = self.env["mail.thread"]
            Thread.message_process(None, dsn)
            Thread.message_process(None, dsn_2)
        first, second = self.env["sengerio.bounce.notice"].search([], order="id")
        Notice = self.registry["sengerio.bounce.notice"]
        original = Notice._tell

        def tell(notice, lines):
            if notice == first:
                raise ValueError("no way")
            return original(notice, lines)

        with (
            patch.object(Notice, "_tell", tell),
            self.mock_mail_gateway(),
            self.assertLogs("odoo.addons.sengerio_mailing", logging.ERROR) as logs,
        ):
            self.env["sengerio.bounce.notice"]._cron_send_notices()
        self.assertIn("not recorded", logs.output[0])
        # the broken one waits with its reason, the other one went out
        self.assertEqual(first.state, "error")
        self.assertIn("no way", first.error)
        self.assertEqual(second.state, "sending")
        self.assertTrue(order_2.activity_ids)
        self.assertFalse(order.activity_ids)
        # once the cause is fixed, an admin retries it from Technical > Email
        first.action_retry()
        self.assertEqual((first.state, first.error), ("pending", False))
        with self.mock_mail_gateway():
            self.env["sengerio.bounce.notice"]._cron_send_notices()
        self.assertEqual(first.state, "sending")
        self.assertTrue(order.activity_ids)

    def test_register_follows_odoo_when_recording_fails(self):
        order, dsn = self._sent_to_carla()
        entry = self.env["sengerio.generated.document"].search(
            [("res_id", "=", order.id), ("res_model", "=", "sale.order")]
        )
        Thread = self.registry["mail.thread"]
        with (
            patch.object(
                Thread, "_sengerio_queue_bounce", side_effect=ValueError("oops")
            ),
            self.assertLogs("odoo.addons.sengerio_mailing", logging.ERROR),
        ):
            self._gateway(dsn)
        # Odoo bounced its notification: the entry says so all the same
        self.assertEqual(entry.state, "bounced")
        self.assertEqual(entry.recipient_ids.state, "bounced")

    def test_multi_megabyte_returned_message(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        entry = self.env["sengerio.generated.document"].search(
            [("res_id", "=", order.id), ("res_model", "=", "sale.order")]
        )
        original = (
            "Message-Id: %s\nFrom: %s\nTo: %s\nSubject: big\n"
            "Content-Type: text/plain\n\n%s\n"
            % (entry.message_id, SALLY, CARLA, ("x" * 76 + "\n") * 60000)
        ).encode()
        self.assertGreater(len(original), 4_000_000)
        self._gateway(self._dsn(original, CARLA).encode())
        self.assertEqual(entry.state, "bounced")
        # the sender gets the whole report back
        [notice] = [
            m for m in self._mails if bounce.NOTICE_HEADER in (m.get("headers") or {})
        ]
        self.assertEqual(notice["email_to"], [SALLY])
        [(_name, content, _mimetype)] = notice["attachments"]
        self.assertGreater(len(content), 4_000_000)

    def test_random_garbage_changes_nothing(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        raw = (
            "From: MAILER-DAEMON@x\nTo: %s\n"
            "Content-Type: multipart/report; boundary=\n\n"
            "\x00\xff garbage --\n" % self.mail_alias_domain.bounce_email
        ).encode("latin-1")
        self._gateway(raw)
        entries = self.env["sengerio.generated.document"].search(
            [("res_id", "=", order.id)]
        )
        self.assertEqual(entries.state, "sent")


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBounceWords(SengerioMailCommon):
    def _words(self, status, env=None):
        return (env or self.env)._(bounce.reason_words(status))

    def test_plain_words(self):
        self.assertEqual(self._words("5.1.1"), "the address does not exist")
        self.assertEqual(self._words("5.2.2"), "the mailbox is full")
        self.assertEqual(
            self._words("5.7.1"), "rejected by the recipient's server policy"
        )
        self.assertEqual(self._words("5.9.99"), "a permanent delivery failure")
        self.assertEqual(
            self._words("4.9.99"), "a temporary failure that did not clear up"
        )

    def test_plain_words_in_italian(self):
        self.env["res.lang"]._activate_lang("it_IT")
        self.env["ir.module.module"]._load_module_terms(["sengerio_mailing"], ["it_IT"])
        env = self.env(context=dict(self.env.context, lang="it_IT"))
        self.assertEqual(self._words("5.1.1", env), "l'indirizzo non esiste")
        self.assertEqual(self._words("5.2.2", env), "la casella di posta è piena")

    def test_folded_diagnostic_reads_as_one_line(self):
        msg = message_from_string(
            "From: MAILER-DAEMON@mx.client.example.com\n"
            "Content-Type: multipart/report; report-type=delivery-status;"
            ' boundary="b"\n\n--b\nContent-Type: text/plain\n\nFailed.\n'
            "--b\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.client.example.com\n\n"
            "Final-Recipient: rfc822; carla@client.example.com\n"
            "Action: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <carla@client.example.com>: Recipient"
            "\n    address rejected: User unknown\n--b--\n",
            policy=policy.SMTP,
        )
        [failure] = bounce.read_bounce(msg).failed
        self.assertEqual(
            failure.diagnostic,
            "550 5.1.1 <carla@client.example.com>: Recipient address rejected: "
            "User unknown",
        )

    def test_auto_reply_detection(self):
        msg = message_from_string(
            "From: carla@client.example.com\nSubject: Risposta automatica: Preventivo\n"
            "\nSono in ferie.\n"
        )
        self.assertTrue(bounce.is_auto_reply(msg))
        self.assertEqual(bounce.read_bounce(msg).kind, "autoreply")

    def test_clear_auto_reply_skips_the_bounce_detectors(self):
        out_of_office = message_from_string(
            "From: carla@client.example.com\nSubject: Automatic reply: Preventivo\n"
            "Auto-Submitted: auto-replied\n\nI am out of the office.\n"
        )
        # Postfix, Exim and Gmail mark their bounces auto-replied too
        old_exim = (
            (CORPUS / "exim_old_text_only.eml")
            .read_text()
            .format(
                bounce_to="bounce@example.com",
                domain="example.com",
                message_id="<1@example.com>",
                recipient=CARLA,
                recipient2=CESARE,
                sender=SALLY,
                subject="Quotation S00042",
                date="Fri, 27 Nov 2026 10:00:00 +0000",
            )
        )
        with patch.object(bounce, "all_failures", wraps=bounce.all_failures) as spy:
            self.assertEqual(bounce.read_bounce(out_of_office).kind, "autoreply")
            self.assertFalse(spy.called)
            report = bounce.read_bounce(message_from_string(old_exim))
        self.assertEqual(report.kind, "failed")
        self.assertTrue(spy.called)
