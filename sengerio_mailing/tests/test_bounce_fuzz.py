from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import SengerioMailCommon

CARLA = "carla@client.example.com"


def _dsn(bounce_to, message_id, failed, action="failed", status="5.1.1"):
    return (
        "From: MAILER-DAEMON@mx.client.example.com\r\n"
        "To: %(to)s\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        ' boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.client.example.com\r\n\r\n"
        "Final-Recipient: rfc822; %(failed)s\r\nAction: %(action)s\r\n"
        "Status: %(status)s\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "Message-Id: %(mid)s\r\nTo: %(failed)s\r\nSubject: Quotation\r\n"
        "--b1--\r\n"
    ) % {
        "to": bounce_to,
        "mid": message_id,
        "failed": failed,
        "action": action,
        "status": status,
    }


@st.composite
def mutated(draw, base):
    """A bounce-addressed message: the base DSN mutated, or noise."""
    head, _sep, rest = base.partition("\r\n")  # keep "From", then To: bounce
    to_line, _sep, body = rest.partition("\r\n")
    choice = draw(st.integers(0, 4))
    if choice == 0:
        body = draw(st.text(max_size=400))
    elif choice == 1:  # cut a slice out
        start = draw(st.integers(0, len(body)))
        end = draw(st.integers(start, len(body)))
        body = body[:start] + body[end:]
    elif choice == 2:  # insert noise
        pos = draw(st.integers(0, len(body)))
        body = body[:pos] + draw(st.text(max_size=80)) + body[pos:]
    elif choice == 3:  # change one meaningful token
        old = draw(st.sampled_from(["failed", "5.1.1", "Message-Id", "rfc822", "b1"]))
        body = body.replace(old, draw(st.text(max_size=12)))
    return "\r\n".join([head, to_line, body]).encode("utf-8", "surrogateescape")


@tagged("post_install", "-at_install", "sengerio_mailing")
class TestBounceFuzz(SengerioMailCommon):
    """Random and mutated messages at the gateway: no traceback, and no entry
    changes unless the message names both the email and the failed address."""

    def _send_quotation(self):
        order = self._create_order()
        with self.mock_mail_gateway():
            self._send_with_composer(order.action_quotation_send(), self.user_sales)
        return self.env["sengerio.generated.document"].search(
            [("res_model", "=", "sale.order"), ("res_id", "=", order.id)]
        )

    def _snapshot(self):
        self.entry.invalidate_recordset()
        return [self.entry.state, *self.entry.recipient_ids.mapped("state")]

    @mute_logger(
        "odoo.addons.mail.models.mail_thread",
        "odoo.addons.sengerio_mailing.models.mail_thread",
        "odoo.addons.sengerio_mailing.models.sengerio_generated_document",
    )
    def test_gateway_fuzz(self):
        self.entry = self._send_quotation()
        base = _dsn(self.mail_alias_domain.bounce_email, self.entry.message_id, CARLA)
        self.assertEqual(self._snapshot(), ["sent", "sent"])

        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(raw=mutated(base))
        def check(raw):
            before = self._snapshot()
            self._gateway(raw)
            after = self._snapshot()
            self.assertFalse(
                self.env["sengerio.bounce.notice"].search(
                    [("state", "in", ("pending", "error"))]
                ),
                "every queued notice was recorded",
            )
            if after != before:
                self.assertIn(self.entry.message_id.encode(), raw)
                self.assertIn(CARLA.encode(), raw)
                # back to the starting point for the next example
                self.entry.recipient_ids.write(
                    {"state": "sent", "failure_reason": False}
                )

        check()
