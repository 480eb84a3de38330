-- 0011: what a log line carries that the access log could not keep apart.
-- client_text: the client as the log wrote it when it is not an IP address:
--   nginx's "unix:" (a request on a unix-socket listener) or a host name
--   (Apache's %h with HostnameLookups on). client_ip and peer_ip are then
--   :: (absent); searches find such rows by this text.
-- raw_request: the request line, escapes kept as the server wrote them,
--   when it is not "METHOD target [HTTP/x.y]" (TLS bytes or an SSH banner
--   sent to a plain-HTTP port, binary junk); method, path, query and
--   protocol are then empty, so path searches see only real requests.
-- has_referer, has_user_agent: the request carried the header, possibly
--   empty. nginx writes "-" for no header and "" for one sent empty; with a
--   Bool beside the text, referer = '' AND has_referer means "sent empty".
--   Rows stored before this migration read as carrying the header exactly
--   when it is not empty (the difference was not kept then).
ALTER TABLE ${access}.access_log
    ADD COLUMN IF NOT EXISTS client_text String CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS raw_request String CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS has_referer Bool DEFAULT referer != '',
    ADD COLUMN IF NOT EXISTS has_user_agent Bool DEFAULT user_agent != '';
