@echo off
rem One invoice per row of factures.csv, each with its own PDF, over one SMTP session.
rem Run it again after a failure: /BATCH_RESUME sends only the rows resultats.csv does not
rem mark as sent, so that no invoice goes out twice.
chcp 65001 >nul
SMail /SMTP_SERVER=smtp.example.com /SSL_VERSION=TLSV1_2 /SMTP_USERNAME=factures@example.com ^
      /SMTP_PASSWORD_FILE=motdepasse.txt /FROM_NAME="Service comptabilité" ^
      /SUBJECT="Facture {{ number }}" /BODY_FILE=Facture.html ^
      /BATCH=factures.csv /BATCH_RESULT=resultats.csv /BATCH_RESUME /RATE=30/MIN /RETRY=3
set CODE=%ERRORLEVEL%
if %CODE% EQU 0 (
    echo Every invoice was sent.
    exit /b 0
)
if %CODE% EQU 11 echo Some invoices were not sent: resultats.csv says which and why. Run this script again once the cause is fixed.
if %CODE% EQU 2 echo An option or a row of factures.csv is wrong: nothing was sent.
if %CODE% EQU 3 echo The server could not be reached: nothing more was sent. Run this script again later.
if %CODE% EQU 4 echo The server refused the login: check motdepasse.txt. Nothing more was sent.
if %CODE% EQU 5 echo The server refused the invoices, or some may have been sent: see resultats.csv before running again.
if %CODE% EQU 6 echo Every attempt failed on a transient error: run this script again later.
if %CODE% EQU 8 echo A file is missing, a PDF, Facture.html or motdepasse.txt: nothing was sent.
echo SMail failed with code %CODE%: see the line above and resultats.csv.
exit /b %CODE%
