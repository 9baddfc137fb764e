"""Market calendars the built-in brokers follow (``hostspec.calendar.MarketCalendar``)."""
