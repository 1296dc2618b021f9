from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models import sengerio_generated_document_recipient as recipient_model
from .common import SengerioMailCommon

SALLY = "sally.sales@agency.example.com"
BRUNO = "bruno.buyer@agency.example.com"
CARLA = "carla@client.example.com"
CESARE = "cesare@client.example.com"
USER_UNKNOWN = (550, b"5.1.1 <%s>: Recipient address rejected: User unknown")


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBccRefusal(SengerioMailCommon):
    """The SMTP server refuses some envelope recipients of the copy's email."""

    def _refusing(self, *emails):
        """The SMTP session refuses ``emails`` at RCPT and takes the others."""
        session = self.testing_smtp_session
        original = session.send_message

        def send_message(message, smtp_from, smtp_to_list):
            refused = {
                email: (USER_UNKNOWN[0], USER_UNKNOWN[1] % email.encode())
                for email in smtp_to_list
                if email in emails
            }
            if refused and len(refused) < len(smtp_to_list):
                # the server took the others: smtplib returns the refused
                original(
                    message,
                    smtp_from,
                    [email for email in smtp_to_list if email not in refused],
                )
            return refused

        return patch.object(session, "send_message", side_effect=send_message)

    def _entry(self, record):
        return self.env["sengerio.generated.document"].search(
            [("res_model", "=", record._name), ("res_id", "=", record.id)]
        )

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_refused_customer_fails_and_resend_reaches_only_them(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            with self._refusing(CARLA):
                self._send_with_composer(order.action_quotation_send(), self.user_sales)
            entry = self._entry(order)
            notification = entry.mail_message_id.notification_ids.filtered(
                lambda n: n.res_partner_id == self.customer
            )
            # as without the addon: Odoo's notification failed, the email is kept
            self.assertEqual(notification.notification_status, "exception")
            self.assertEqual(notification.failure_type, "unknown")
            self.assertIn("550 5.1.1", notification.failure_reason)
            self.assertEqual(entry.state, "exception")
            line = entry.recipient_ids
            self.assertEqual(line.state, "exception")
            self.assertIn("The mail server refused the email.", line.failure_reason)
            self.assertIn(
                "550 5.1.1 <%s>: Recipient address rejected: User unknown" % CARLA,
                line.failure_reason,
            )
            # the sender got the copy, the customer nothing
            self.assertEqual(len(self._smtp_emails_to(SALLY)), 1)
            self.assertFalse(self._smtp_emails_to(CARLA))
            self.assertTrue(notification.sengerio_bcc_sent)

            # the address is fixed on the server: resend from the register
            self._resend_from_register(entry)
        [resent] = self._smtp_emails_to(CARLA)
        self.assertEqual(resent["smtp_to_list"], [CARLA])
        self.assertEqual(len(self._smtp_emails_to(SALLY)), 1, "no second copy")
        self.assertEqual(entry.state, "sent")
        self.assertEqual(entry.recipient_ids.state, "sent")
        self.assertFalse(entry.failure_reason)

    @mute_logger("odoo.addons.mail.models.mail_mail")
    def test_resend_before_the_commit_moves_the_line_to_the_new_email(self):
        """As the mail cron runs it: the register follows just before the
        commit, from what Odoo wrote on the notification in the transaction
        (the resend moves it to a new email, then that email is sent)."""
        order = self._create_order()
        with (
            self.mock_mail_gateway(mail_unlink_sent=False),
            patch.object(recipient_model, "_sync_at_once", return_value=False),
        ):
            with self._refusing(CARLA):
                self._send_with_composer(order.action_quotation_send(), self.user_sales)
            self.env.cr.precommit.run()
            entry = self._entry(order)
            notification = entry.mail_message_id.notification_ids
            first_mail = notification.mail_mail_id
            self.assertEqual(entry.recipient_ids.state, "exception")
            self.assertEqual(entry.recipient_ids.mail_mail_id, first_mail.id)
            self._resend_from_register(entry)
            self.env.cr.precommit.run()
            self.assertFalse(self.env.cr.postcommit.data.get(recipient_model.SYNC_KEY))
        self.env.invalidate_all()
        self.assertNotEqual(notification.mail_mail_id, first_mail)
        self.assertEqual(notification.mail_mail_id.state, "sent")
        self.assertEqual(entry.recipient_ids.mail_mail_id, notification.mail_mail_id.id)
        self.assertEqual(entry.recipient_ids.state, "sent")
        self.assertEqual(len(self._smtp_emails_to(SALLY)), 1, "no second copy")

    def test_refused_hidden_copy_is_noted_and_never_fails_the_customer(self):
        order = self._create_order()
        with (
            self.mock_mail_gateway(mail_unlink_sent=True),
            self._refusing(SALLY),
            self.assertLogs("odoo.addons.sengerio_mailing", "WARNING") as logs,
        ):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        [sent] = self._smtp_emails_to(CARLA)
        self.assertEqual(sent["smtp_to_list"], [CARLA])
        entry = self._entry(order)
        self.assertEqual(entry.state, "sent")
        self.assertEqual(entry.recipient_ids.state, "sent")
        self.assertIn("refused the hidden copy to %s" % SALLY, entry.bcc_note)
        self.assertIn("550 5.1.1", entry.bcc_note)
        self.assertIn("refused the hidden copy", logs.output[0])
        # a refused copy is not retried
        self.assertTrue(entry.mail_message_id.notification_ids.sengerio_bcc_sent)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBccCarrier(SengerioMailCommon):
    """The copy rides the customer's own email, exactly once."""

    def test_copy_rides_the_customer_email_not_an_internal_one(self):
        """Odoo splits the message by language: the copy is Italian, as Carla's."""
        self.env["res.lang"]._activate_lang("it_IT")
        self.customer.lang = "it_IT"
        order = self._create_order()
        internal = self.user_buyer.partner_id
        with self.mock_mail_gateway():
            self._send_with_composer(
                order.action_quotation_send(),
                self.user_sales,
                partner_ids=[(6, 0, (internal | self.customer).ids)],
            )
        message = self._last_document_message(order)
        self.assertEqual(message.sengerio_bcc_partner_id, self.customer)
        mails = self._new_mails.filtered(lambda m: m.mail_message_id == message)
        self.assertEqual(len(mails), 2, "one email per language")
        self.assertEqual(
            mails.filtered("sengerio_bcc_holder").recipient_ids, self.customer
        )
        [internal_email] = self._smtp_emails_to(BRUNO)
        self.assertEqual(internal_email["smtp_to_list"], [BRUNO])
        self.assertHiddenCopy(SALLY, CARLA)

    def test_copy_rides_the_first_customer_when_the_document_partner_is_not_a_recipient(
        self,
    ):
        """Odoo makes the internal recipients' email first: not the copy's."""
        order = self._create_order()
        internal = self.user_buyer.partner_id
        with self.mock_mail_gateway():
            self._send_with_composer(
                order.action_quotation_send(),
                self.user_sales,
                partner_ids=[(6, 0, (internal | self.customer_2).ids)],
            )
        message = self._last_document_message(order)
        self.assertEqual(message.sengerio_bcc_partner_id, self.customer_2)
        mails = self._new_mails.filtered(lambda m: m.mail_message_id == message)
        self.assertEqual(mails.mapped("recipient_ids"), internal | self.customer_2)
        self.assertEqual(mails[0].recipient_ids, internal)
        self.assertFalse(mails[0].sengerio_bcc_holder)
        self.assertHiddenCopy(SALLY, CESARE)

    def test_vendor_email_carries_the_purchase_copy(self):
        purchase = self._create_purchase()
        action = purchase.with_user(self.user_buyer).action_rfq_send()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                action,
                self.user_buyer,
                partner_ids=[(6, 0, (self.user_sales.partner_id | self.vendor).ids)],
            )
        self.assertHiddenCopy(BRUNO, "vittoria@vendor.example.com")
        [internal_email] = self._smtp_emails_to(SALLY)
        self.assertEqual(internal_email["smtp_to_list"], [SALLY])


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestScheduledSend(SengerioMailCommon):
    """Send Later and templates with a scheduled date: copy and entry too."""

    def _entries(self, record):
        return self.env["sengerio.generated.document"].search(
            [("res_model", "=", record._name), ("res_id", "=", record.id)]
        )

    def test_send_later_quotation_posted_by_the_cron(self):
        order = self._create_order()
        action = order.action_quotation_send()
        later = fields.Datetime.now() + timedelta(hours=1)
        composer = (
            self.env["mail.compose.message"]
            .with_user(self.user_sales)
            .with_context(**action["context"])
            .create({})
        )
        composer.action_schedule_message(scheduled_date=later)
        scheduled = self.env["mail.scheduled.message"].search(
            [("model", "=", "sale.order"), ("res_id", "=", order.id)]
        )
        self.assertTrue(scheduled.sengerio_document_send)
        self.assertEqual(
            scheduled.sengerio_template_id, self.env.ref("sale.email_template_edi_sale")
        )
        self.assertFalse(self._entries(order))
        with (
            freeze_time(later + timedelta(minutes=1)),
            self.mock_mail_gateway(mail_unlink_sent=True),
        ):
            self.env["mail.scheduled.message"]._post_messages_cron()
        self.assertFalse(scheduled.exists())
        self.assertHiddenCopy(SALLY, CARLA)
        entry = self._entries(order)
        self.assertEqual(len(entry), 1)
        self.assertRecordValues(
            entry,
            [{"document_type": "quotation", "state": "sent", "bcc_email": SALLY}],
        )

    def test_send_later_of_a_chat_message_stays_plain(self):
        order = self._create_order()
        later = fields.Datetime.now() + timedelta(hours=1)
        composer = (
            self.env["mail.compose.message"]
            .with_user(self.user_sales)
            .with_context(default_model="sale.order", default_res_ids=order.ids)
            .create({"body": "See you tomorrow", "partner_ids": self.customer.ids})
        )
        composer.action_schedule_message(scheduled_date=later)
        with (
            freeze_time(later + timedelta(minutes=1)),
            self.mock_mail_gateway(mail_unlink_sent=True),
        ):
            self.env["mail.scheduled.message"]._post_messages_cron()
        self.assertNoHiddenCopy()
        self.assertFalse(self._entries(order))

    def test_template_with_a_scheduled_date_sent_by_the_cron(self):
        """The message is posted at once, its emails made later by Odoo's cron."""
        order = self._create_order()
        later = fields.Datetime.now() + timedelta(days=1)
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(),
                self.user_sales,
                scheduled_date=fields.Datetime.to_string(later),
            )
            self.assertFalse(self.emails, "the emails wait for the cron")
            message = self._last_document_message(order)
            self.assertEqual(message.sengerio_bcc_email, SALLY)
            with freeze_time(later + timedelta(minutes=1)):
                self.env["mail.message.schedule"]._send_notifications_cron()
        self.assertHiddenCopy(SALLY, CARLA)
        entry = self._entries(order)
        self.assertEqual(len(entry), 1)
        self.assertEqual(entry.state, "sent")
        self.assertEqual(entry.recipient_ids.partner_id, self.customer)


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestRegisterFollowsOdoo(SengerioMailCommon):
    """One road: the register follows Odoo's notification, after the commit."""

    def _entry(self, record):
        return self.env["sengerio.generated.document"].search(
            [("res_model", "=", record._name), ("res_id", "=", record.id)]
        )

    def _queue_quotation(self, partners):
        """A quotation sent with Send, its emails left to the mail queue."""
        order = self._create_order(partner=partners[0])
        action = order.action_quotation_send()
        self.env["mail.compose.message"].with_user(self.user_sales).with_context(
            **action["context"], mail_notify_force_send=False
        ).create({"partner_ids": [(6, 0, partners.ids)]}).action_send_mail()
        entry = self._entry(order)
        self.assertEqual(set(entry.recipient_ids.mapped("state")), {"outgoing"})
        mails = self._new_mails.filtered(
            lambda m: m.mail_message_id == entry.mail_message_id
        )
        self.env.flush_all()
        return entry, mails

    def _commit_hooks(self):
        """What a commit would run: the precommit hooks, then postcommit's data."""
        self.env.cr.precommit.run()
        pending = self.env.cr.postcommit.data.pop(recipient_model.SYNC_KEY, None)
        self.env.cr.postcommit.clear()
        self.env.invalidate_all()
        return pending

    def test_an_entry_shared_by_sibling_emails_is_written_after_the_commit(self):
        """Two processes may send the siblings at once: the entry they share
        is written after the commit, so it can never roll an email back."""
        with self.mock_mail_gateway(mail_unlink_sent=True):
            entry, mails = self._queue_quotation(
                self.customer_2 | self.user_buyer.partner_id
            )
            self.assertEqual(len(mails), 2)
            customer_mail = mails.filtered("sengerio_bcc_holder")
            with patch.object(recipient_model, "_sync_at_once", return_value=False):
                customer_mail.send()
                pending = self._commit_hooks()
        self.assertHiddenCopy(SALLY, CESARE)
        # before the commit, the register's rows are untouched...
        self.assertEqual(entry.state, "outgoing")
        self.assertEqual(set(entry.recipient_ids.mapped("state")), {"outgoing"})
        # ... and follow after it
        notification_ids, mail_statuses, bcc_notes = pending
        customer_notification = entry.mail_message_id.notification_ids.filtered(
            lambda n: n.res_partner_id == self.customer_2
        )
        self.assertEqual(list(notification_ids), customer_notification.ids)
        self.assertFalse(bcc_notes)
        self.env["sengerio.generated.document.recipient"]._sync(
            notification_ids, mail_statuses, lock=True
        )
        line = entry.recipient_ids.filtered(lambda r: r.partner_id == self.customer_2)
        self.assertEqual(line.state, "sent")
        self.assertEqual(entry.state, "outgoing", "the colleague's email is queued")

    def test_an_entry_of_one_email_is_written_before_the_commit(self):
        with self.mock_mail_gateway(mail_unlink_sent=True):
            entry, mails = self._queue_quotation(self.customer_2)
            with patch.object(recipient_model, "_sync_at_once", return_value=False):
                mails.send()
                self.env.invalidate_all()
                self.assertEqual(entry.state, "outgoing", "not before the commit")
                pending = self._commit_hooks()
        self.assertFalse(pending, "nothing left for after the commit")
        self.assertEqual(entry.state, "sent")
        self.assertEqual(entry.recipient_ids.state, "sent")

    def test_history_survives_the_clean_up_of_notifications(self):
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        entry = self._entry(order)
        entry.mail_message_id.notification_ids.unlink()
        self.env.invalidate_all()
        self.assertEqual(entry.state, "sent")
        self.assertEqual(entry.recipient_ids.state, "sent")
        self.assertEqual(entry.recipient_ids.partner_id, self.customer)

    def test_sender_chosen_at_send_time_is_kept(self):
        """The salesperson follows the order: no copy, but the sender is known."""
        order = self._create_order()
        with self.mock_mail_gateway(mail_unlink_sent=True):
            self._send_with_composer(
                order.action_quotation_send(),
                self.env.ref("base.user_root"),
                author_id=self.partner_root.id,
            )
        entry = self._entry(order)
        self.assertFalse(entry.bcc_email)
        self.assertEqual(entry.sender_email, SALLY)
        # the order changes hands: the bounce news still go to who sent it
        order.with_context(mail_auto_subscribe_no_notify=True).user_id = self.user_buyer
        self.assertEqual(entry._sender_email(), SALLY)
