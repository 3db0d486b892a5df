# Runs the vendored Eclipse Paho interoperability tests (test/vendor/paho.mqtt.testing) against a broker:
#   python3 paho_run.py 3|5 HOST PORT [TestName ...]   (or --list: the suite's test names on one line)
# client_test.py and client_test5.py read their settings as module globals set in their own __main__ block, whose
# option parsing then trips over unittest's: this sets the same globals and runs unittest on the module.
import os, sys, unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, '..', 'vendor', 'paho.mqtt.testing', 'interoperability'))

# The suite's client gives its sockets a 0.5 s timeout, which is how long it waits for a CONNACK: a limit of the
# harness, not of MQTT, and one a broker on a loaded 2-core machine (other test suites beside it) did not always make
# (test_unsubscribe: `TimeoutError: timed out` on a connect). At least 5 s here; the suite's assertions are its own.
import socket
SOCKET_TIMEOUT_S = 5.0
_settimeout = socket.socket.settimeout
socket.socket.settimeout = lambda self, t: _settimeout(self, t if t is None else max(t, SOCKET_TIMEOUT_S))

version, host, port, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
sys.argv = [sys.argv[0]]

if version == '3':
    import client_test as suite
    suite.topics = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
    suite.wildtopics = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
else:
    import client_test5 as suite
    suite.topic_prefix = "client_test5/"
    suite.topics = [suite.topic_prefix + t for t in ["TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA"]]
    suite.wildtopics = [suite.topic_prefix + t for t in ["TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#"]]
suite.nosubscribe_topics = ("test/nosubscribe",)

# test_keepalive connects with keepalive 5 and then sleeps 15 s before it looks for the will: a broker must close the
# connection after 1.5 x keepalive, 7.5 s [MQTT-3.1.2-24], and publish the will at once. The wait is cut to 10 s (the
# suite's only 15 s sleep, in both versions): the same check with less slack, and the suite's longest test no longer holds the run.
_sleep = suite.time.sleep
suite.time.sleep = lambda s: _sleep(10 if s == 15 else s)
suite.host = host
suite.port = port

import logging
logging.getLogger().setLevel(logging.CRITICAL)

loader = unittest.TestLoader()
if names == ['--list']:
    print(' '.join(loader.getTestCaseNames(suite.Test)))
    sys.exit(0)
tests = loader.loadTestsFromNames(['Test.' + n for n in names], suite) if names else loader.loadTestsFromTestCase(suite.Test)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(tests)
print("PAHO-RESULT ran=%d failures=%d errors=%d" % (result.testsRun, len(result.failures), len(result.errors)))
sys.exit(0 if result.wasSuccessful() else 1)
