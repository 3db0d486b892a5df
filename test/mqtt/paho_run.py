# Runs the vendored Eclipse Paho interoperability tests (test/vendor/paho.mqtt.testing) against a broker:
#   python3 paho_run.py 3|5 HOST PORT [TestName ...]   (or --list: the suite's test names on one line)
# client_test.py and client_test5.py read their settings as module globals set in their own __main__ block, whose
# option parsing then trips over unittest's: this sets the same globals and runs unittest on the module.
import os, sys, unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, '..', 'vendor', 'paho.mqtt.testing', 'interoperability'))

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
