@echo off
rem One invoice per row of factures.csv, each with its own PDF, over one SMTP session.
rem Run it again after a failure: /BATCH_RESUME skips the rows resultats.csv marks as sent.
SMail /SMTP_SERVER=smtp.example.com /SSL_VERSION=TLSV1_2 /SMTP_USERNAME=factures@example.com ^
      /SMTP_PASSWORD_FILE=motdepasse.txt /FROM_NAME="Service comptabilité" ^
      /SUBJECT="Facture {{ number }}" /BODY_FILE=Facture.html ^
      /BATCH=factures.csv /BATCH_RESULT=resultats.csv /BATCH_RESUME /RATE=30/MIN /RETRY=3
if errorlevel 11 echo Some invoices were not sent: see resultats.csv
