//! The SES record model for both formats: identity notifications (`notificationType`) and
//! configuration-set event publishing (`eventType`).
