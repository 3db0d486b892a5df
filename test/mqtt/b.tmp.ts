import { startTestBroker } from '../helpers/broker.js';
const b = await startTestBroker({ mqttPort: 0, mqttAnonymousAcl: '{"subDeny":["test/nosubscribe"]}' });
console.log(b.mqttPort);
await new Promise(r => setTimeout(r, 1500000));
await b.close();
