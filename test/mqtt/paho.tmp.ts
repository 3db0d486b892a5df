import { startTestBroker } from '../helpers/broker.js';
const b = await startTestBroker({ mqttPort: 0 });
console.log(b.mqttPort);
await new Promise(r => setTimeout(r, 120000));
await b.close();
