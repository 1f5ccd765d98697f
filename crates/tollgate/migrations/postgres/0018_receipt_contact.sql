-- The email or phone (digits) a user's 54-FZ receipts go to, asked once when YooKassa
-- receipts are on and kept for later purchases.
ALTER TABLE users ADD COLUMN receipt_contact TEXT;
