"""Faults during a queue run: SMTP down, Odoo killed, PostgreSQL restarted.

Each test starts from its own copy of the ``queued`` template: 25 document
emails (quotations, booking confirmations, invoices, credit notes, RFQs and
purchase orders), each with a hidden copy to its salesperson, waiting in
Odoo's queue. It drains the queue into a real SMTP sink, breaks something in
the middle, recovers the way an administrator would, and checks what the
sink received (by Message-Id and envelope recipients) against the Generated
Documents register.
"""

import asyncio
import threading
import time
from collections import Counter
from email import policy
from email.parser import BytesParser

import databases
import pytest
from conftest import VAR, db_name
from harness import OdooServer, RpcError
from smtp_sink import SmtpSink, SpoolHandler

SMTP_DOWN_REASON = "The outgoing mail server could not be reached."
BCC_DOCUMENT_TYPES = {
    "quotation",
    "booking_confirmation",
    "invoice",
    "credit_note",
    "supplier_document",
}


def queued_emails(db, env=None):
    """The queue: ``(Message-Id, customer, hidden copy)`` of each email."""
    return databases.query(
        db,
        """
        SELECT msg.message_id, p.email_normalized,
               CASE WHEN mail.sengerio_bcc_holder THEN msg.sengerio_bcc_email END
          FROM mail_mail mail
          JOIN mail_message msg ON msg.id = mail.mail_message_id
          JOIN mail_mail_res_partner_rel rel ON rel.mail_mail_id = mail.id
          JOIN res_partner p ON p.id = rel.res_partner_id
         WHERE mail.state = 'outgoing'
         ORDER BY mail.id
        """,
        env=env,
    )


def transactions(sink):
    """``(Message-Id, envelope recipients)`` of each message the sink got."""
    parser = BytesParser(policy=policy.default)
    return [
        (
            parser.parsebytes(m["raw"], headersonly=True)["Message-Id"].strip(),
            frozenset(m["rcpt_tos"]),
        )
        for m in sink.messages()
    ]


def assert_delivered(received, queue, twice=()):
    """Each queued email went out once, customer and hidden copy together.

    :param received: the sink's :func:`transactions`
    :param twice: Message-Ids that went out twice (SMTP forces it)
    """
    counts = Counter(received)
    for message_id, customer, bcc in queue:
        assert bcc, "every queued document email has a hidden copy"
        sent = counts.pop((message_id, frozenset({customer, bcc})), 0)
        expected = 2 if message_id in twice else 1
        assert sent == expected, "%s went out %s times" % (message_id, sent)
    assert not counts, "unexpected SMTP messages: %s" % dict(counts)


def register(client):
    """The register, by Message-Id."""
    entries = client.call(
        "sengerio.generated.document",
        "search_read",
        [],
        fields=["message_id", "document_type", "state", "failure_reason", "user_id"],
    )
    return {entry["message_id"]: entry for entry in entries}


def assert_all_sent(client, queue):
    entries = register(client)
    assert sorted(entries) == sorted(m for m, _c, _b in queue), "entries lost"
    assert {e["state"] for e in entries.values()} == {"sent"}
    assert not any(e["failure_reason"] for e in entries.values())
    assert not client.call("mail.mail", "search", [("state", "=", "outgoing")])


def wait_for(condition, timeout=60, interval=0.1, message="timed out"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(interval)


def test_smtp_server_down_during_a_queue_run(prepared_dbs, db_copy, tmp_path):
    db = db_copy(prepared_dbs.queued, "smtp_down")
    queue = queued_emails(db)
    assert len(queue) >= 20
    sink = SmtpSink(tmp_path / "mail").start()
    databases.set_smtp_port(db, sink.port)
    databases.set_password(db, "agent1", "agent1")
    server = OdooServer(db, VAR / "faults-smtp.log").start()
    try:
        admin = server.client()
        sink.stop()  # the port now refuses connections

        # the Email Queue Manager runs while the mail server is down
        admin.call("mail.mail", "process_email_queue")
        entries = register(admin)
        assert sorted(entries) == sorted(m for m, _c, _b in queue)
        assert {e["document_type"] for e in entries.values()} == BCC_DOCUMENT_TYPES
        for message_id, customer, _bcc in queue:
            entry = entries[message_id]
            assert entry["state"] == "exception"
            # the reason in plain words, per recipient
            assert entry["failure_reason"] == "%s: %s" % (customer, SMTP_DOWN_REASON)
        assert not sink.messages()

        sink.start()  # back, on the same port
        # agent1 resends their documents from Generated Documents...
        agent = server.client("agent1", "agent1")
        mine = [e for e in entries.values() if e["user_id"][0] == agent.uid]
        assert mine
        for entry in mine:
            action = agent.call(
                "sengerio.generated.document", "action_resend", [entry["id"]]
            )
            wizard_id = agent.call(
                "mail.resend.message", "create", {}, context=action["context"]
            )
            agent.call("mail.resend.message", "resend_mail_action", [wizard_id])
        # ... and the administrator retries the other failed emails from
        # Settings > Technical > Emails; the Email Queue Manager sends them
        failed = admin.call(
            "mail.mail",
            "search",
            [
                ("state", "=", "exception"),
                ("message_id", "not in", [e["message_id"] for e in mine]),
            ],
        )
        assert len(failed) == len(queue) - len(mine)
        admin.call("mail.mail", "action_retry", failed)
        admin.call("mail.mail", "process_email_queue")

        assert_all_sent(admin, queue)
        assert_delivered(transactions(sink), queue)
    finally:
        server.stop()
        sink.stop()


class HoldingSpool(SpoolHandler):
    """Stores every message, but holds back its answer to one of them.

    The ``hold_at``-th message is stored (the server has it), and the "250
    accepted" waits until :attr:`release` is set: the fault strikes while
    Odoo waits for it.
    """

    def __init__(self, spool, hold_at):
        super().__init__(spool)
        self.hold_at = hold_at
        self.received = 0
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        self.received += 1
        if self.received == self.hold_at:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return answer


def holding_sink(spool, hold_at):
    sink = SmtpSink(spool)
    sink.handler = HoldingSpool(spool, hold_at)
    return sink.start()


# The cron thread wakes up when a scheduled action's next call changes.
CRON_SERVER = {
    "extra_args": ["--max-cron-threads", "1"],
    "env": {"ODOO_NOTIFY_CRON_CHANGES": "1"},
}


def run_email_queue_cron(admin):
    """Make the Email Queue Manager due now: a cron thread runs it."""
    cron_id = admin.ref("mail.ir_cron_mail_scheduler_action")
    due = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 60))
    admin.call("ir.cron", "write", [cron_id], {"nextcall": due})


def outgoing_count(client):
    return client.call("mail.mail", "search_count", [("state", "=", "outgoing")])


def assert_register_matches_the_sink(db, sink, queue, env=None):
    """Sent entries are exactly the emails the server acknowledged.

    Returns the Message-Id of the email the server had stored but not yet
    acknowledged when the fault struck: Odoo never learnt it went out.
    """
    received = [message_id for message_id, _rcpt in transactions(sink)]
    assert len(received) == sink.handler.hold_at, "nothing went out after the fault"
    held = received[-1]
    states = dict(
        databases.query(
            db, "SELECT message_id, state FROM sengerio_generated_document", env=env
        )
    )
    assert sorted(states) == sorted(m for m, _c, _b in queue), "entries lost"
    sent = {message_id for message_id, state in states.items() if state == "sent"}
    assert sent == set(received) - {held}
    assert {states[m] for m in set(states) - sent} == {"outgoing"}
    return held


def test_odoo_killed_during_a_queue_run(prepared_dbs, db_copy, tmp_path):
    db = db_copy(prepared_dbs.queued, "killed")
    queue = queued_emails(db)
    sink = holding_sink(tmp_path / "mail", hold_at=len(queue) // 3)
    databases.set_smtp_port(db, sink.port)
    databases.pause_crons(db)
    log = VAR / "faults-kill.log"
    server = OdooServer(db, log, **CRON_SERVER).start()
    try:
        run_email_queue_cron(server.client())
        assert sink.handler.holding.wait(60), "the queue did not run"
        server.kill()  # SIGKILL while Odoo waits for the server's answer
        sink.handler.release.set()

        held = assert_register_matches_the_sink(db, sink, queue)

        server = OdooServer(db, log, **CRON_SERVER).start()
        admin = server.client()
        run_email_queue_cron(admin)
        wait_for(lambda: not outgoing_count(admin), message="queue not drained")
        assert_all_sent(admin, queue)
        # only the email in flight went twice, its hidden copy with it
        assert_delivered(transactions(sink), queue, twice={held})
    finally:
        sink.handler.release.set()
        server.stop()
        sink.stop()


@pytest.fixture
def private_cluster():
    """A PostgreSQL server of this test's own: it restarts it at will."""
    cluster = databases.PrivateCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


def answers(client):
    """Whether the server serves requests that read the database."""
    try:
        return bool(client.call("res.users", "search", [], limit=1))
    except (RpcError, OSError):
        return False


def test_postgresql_restarted_during_a_queue_run(
    prepared_dbs, private_cluster, tmp_path
):
    """Odoo in prefork mode, as in production: its cron worker is respawned.

    (In threaded mode the cron thread dies with its connection, and no
    scheduled action runs again until Odoo is restarted.)
    """
    pg = private_cluster.env
    db = db_name("pg_restart")
    private_cluster.restore(prepared_dbs.queued, db)
    queue = queued_emails(db, pg)
    sink = holding_sink(tmp_path / "mail", hold_at=len(queue) // 3)
    databases.set_smtp_port(db, sink.port, pg)
    databases.pause_crons(db, env=pg)
    server = OdooServer(
        db,
        VAR / "faults-postgresql.log",
        extra_args=["--workers", "1", "--max-cron-threads", "1"],
        env=dict(CRON_SERVER["env"], **pg),
    ).start()
    try:
        admin = server.client()
        run_email_queue_cron(admin)
        assert sink.handler.holding.wait(60), "the queue did not run"
        private_cluster.restart()  # while Odoo waits for the server's answer
        sink.handler.release.set()

        wait_for(lambda: answers(admin), message="Odoo does not answer again")
        held = assert_register_matches_the_sink(db, sink, queue, pg)

        def drained():
            # wake the cron workers up, as Odoo does when a job is due now
            databases.query(
                "postgres", "SELECT pg_notify('cron_trigger', %s)", (db,), pg
            )
            return not outgoing_count(admin)

        wait_for(drained, timeout=120, interval=1, message="queue not drained")
        assert_all_sent(admin, queue)
        assert_delivered(transactions(sink), queue, twice={held})
    finally:
        sink.handler.release.set()
        server.stop()
        sink.stop()
        databases.remove_filestore(db)  # the database goes with the cluster
