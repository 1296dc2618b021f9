from . import mail_tracking_email
