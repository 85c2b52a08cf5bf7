/*
| The admin panel: server-rendered pages under /admin, role admin only.
| Session, shield (CSRF) and auth run on this group alone, never on /v1.
| Controllers are thin: they validate and call app/actions, the same code
| the ace commands run.
*/
import router from '@adonisjs/core/services/router'
import { middleware, webStack } from '#start/kernel'

const DashboardController = () => import('#controllers/admin/dashboard_controller')

router
  .group(() => {
    router.get('/', [DashboardController, 'index']).as('dashboard')
  })
  .prefix('/admin')
  .as('admin')
  .use([...webStack(), middleware.auth(), middleware.admin()])
