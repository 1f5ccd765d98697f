-- The invoice payload a payment arrived with, as the provider reported it: what an admin
-- needs to apply a payment kept for review to the purchase it names (`/payment`).
ALTER TABLE payments ADD COLUMN invoice_payload TEXT;
