// GOV.UK Frontend's components (service navigation toggle, error summary focus, ...).
// Every page works without this; it only enhances.
import { initAll } from '/assets/js/govuk-frontend.min.js'

document.body.classList.add('js-enabled', 'govuk-frontend-supported')
initAll()
