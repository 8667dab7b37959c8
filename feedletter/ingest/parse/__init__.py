"""Reading a feed, whatever its format: bytes prepared and sniffed (prepare), RSS and Atom (xml_feeds),
JSON Feed (json_feed), behind one dispatch (feeds.parse_feed)."""
