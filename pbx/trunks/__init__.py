"""SIP trunks to carriers: their settings, the registrations the PBX keeps
with them, and telling a carrier's requests from a phone's."""
