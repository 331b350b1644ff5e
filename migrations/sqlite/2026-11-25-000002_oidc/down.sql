DROP TABLE login_throttle;
DROP TABLE access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE authorization_codes;
DROP TABLE consents;
DROP TABLE authorization_requests;
DROP TABLE sessions;
