"""Writes a small location database with libloc's own writer, for the
country tests: Debian's python3-location (run with /usr/bin/python3, which
sees Debian's packages).

usage: /usr/bin/python3 location_db.py OUT NETWORK=CC ..."""
import sys

import location


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    writer = location.Writer()
    writer.vendor = "A3Mailer tests"
    writer.description = "networks of the documentation ranges, for tests"
    writer.license = "CC0"
    for spec in sys.argv[2:]:
        network, _, country = spec.partition("=")
        writer.add_network(network).country_code = country
    writer.write(sys.argv[1])


if __name__ == "__main__":
    main()
