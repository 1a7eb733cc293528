"""simple-otp domain code: everything app.py calls lives here."""
